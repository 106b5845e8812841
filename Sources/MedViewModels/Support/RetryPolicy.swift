import Foundation
import MedViewCore

/// When and how long to wait before trying a model request again.
///
/// Exponential backoff with full jitter: before retry `n` (1-based) the wait is uniform in
/// `0 ... min(maxDelay, baseDelay × 2^(n-1))`, and at least the provider's `Retry-After` when it
/// sent one (up to ``maxRetryAfter``; longer asks are not retried). Only failures before the first delta are retried
/// (see ``RetryingModelStream``): once text has reached the patient, a retry would repeat it.
public struct RetryPolicy: Sendable, Equatable {
    /// Attempts in all, the first included; 1 means never retry.
    public var maxAttempts: Int
    /// The cap of the first wait.
    public var baseDelay: Duration
    /// No backoff wait is longer than this.
    public var maxDelay: Duration
    /// The longest `Retry-After` we honour. A provider asking for more is not retried: the error
    /// goes to the patient at once (a health question should not hang for minutes in silence).
    public var maxRetryAfter: Duration

    /// A policy; `maxAttempts` below 1 counts as 1.
    public init(maxAttempts: Int = 3, baseDelay: Duration = .milliseconds(200), maxDelay: Duration = .seconds(5), maxRetryAfter: Duration = .seconds(20)) {
        self.maxAttempts = max(1, maxAttempts)
        self.baseDelay = baseDelay
        self.maxDelay = maxDelay
        self.maxRetryAfter = maxRetryAfter
    }

    /// Never retries.
    public static let none = RetryPolicy(maxAttempts: 1)

    /// The upper bound of the wait before retry `retry` (1-based), before jitter.
    public func ceiling(beforeRetry retry: Int) -> Duration {
        let exponent = min(max(retry - 1, 0), 30)
        let scaled = baseDelay * (1 << exponent)
        return min(scaled, maxDelay)
    }

    /// The wait before retry `retry` (1-based): full jitter below ``ceiling(beforeRetry:)``.
    public func delay(beforeRetry retry: Int, using generator: inout some RandomNumberGenerator) -> Duration {
        let ceiling = ceiling(beforeRetry: retry)
        let nanos = ceiling.components.seconds * 1_000_000_000 + ceiling.components.attoseconds / 1_000_000_000
        guard nanos > 0 else { return .zero }
        return .nanoseconds(Int64.random(in: 0 ... nanos, using: &generator))
    }

    /// The wait before retry `retry` after `error`: the backoff, but never less than the
    /// provider's `Retry-After`; nil when the provider asks for longer than ``maxRetryAfter``.
    public func delay(beforeRetry retry: Int, after error: ModelError, using generator: inout some RandomNumberGenerator) -> Duration? {
        let backoff = delay(beforeRetry: retry, using: &generator)
        guard let asked = error.retryAfter else { return backoff }
        guard asked <= maxRetryAfter else { return nil }
        return max(backoff, asked)
    }
}
