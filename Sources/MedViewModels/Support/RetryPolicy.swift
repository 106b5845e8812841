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

/// Wraps a model call so that retryable failures before the first delta are retried.
public enum RetryingModelStream {
    /// Sleeps for a duration; injectable so tests need not wait.
    public typealias Sleeper = @Sendable (Duration) async throws -> Void

    /// Runs `attempt(1)`, and on a retryable ``ModelError`` thrown before any `.delta` was yielded, waits
    /// and runs `attempt(2)`, and so on up to `policy.maxAttempts`. Errors after the first delta, errors
    /// that are not retryable and the last attempt's error pass through unchanged. Cancelling the
    /// consumer cancels the attempt in flight and any wait.
    ///
    /// - Parameters:
    ///   - onRetry: told of each retry (attempt number about to run, the error that caused it) for logs and metrics.
    public static func make(
        policy: RetryPolicy,
        sleep: @escaping Sleeper = { try await Task.sleep(for: $0) },
        onRetry: @escaping @Sendable (_ nextAttempt: Int, _ error: ModelError) -> Void = { _, _ in },
        attempt: @escaping @Sendable (_ number: Int) -> AsyncThrowingStream<ModelEvent, any Error>
    ) -> AsyncThrowingStream<ModelEvent, any Error> {
        AsyncThrowingStream { continuation in
            let task = Task {
                var generator = SystemRandomNumberGenerator()
                var number = 1
                while true {
                    var sawDelta = false
                    do {
                        for try await event in attempt(number) {
                            if case .delta = event { sawDelta = true }
                            continuation.yield(event)
                        }
                        continuation.finish()
                        return
                    } catch let error as ModelError where error.retryable && !sawDelta && number < policy.maxAttempts && !Task.isCancelled {
                        guard let wait = policy.delay(beforeRetry: number, after: error, using: &generator) else {
                            continuation.finish(throwing: error)
                            return
                        }
                        number += 1
                        onRetry(number, error)
                        do {
                            try await sleep(wait)
                        } catch {
                            continuation.finish(throwing: CancellationError())
                            return
                        }
                    } catch {
                        continuation.finish(throwing: error)
                        return
                    }
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }
}

/// Reads how long a provider asks us to wait from its response headers: `retry-after-ms`
/// (milliseconds, as OpenAI and Azure send), else `Retry-After` as delay-seconds or an HTTP-date
/// (RFC 9110 §10.2.3). Anything unreadable, negative or in the past is ignored.
public enum RetryAfter {
    /// The wait the headers ask for: `retry-after-ms` if readable, else `Retry-After`; nil when neither says.
    public static func parse(milliseconds: String?, retryAfter: String?, now: Date = Date()) -> Duration? {
        if let text = milliseconds?.trimmingCharacters(in: .whitespaces), let ms = Double(text), ms.isFinite, ms >= 0, ms < 86_400_000 {
            return .milliseconds(Int64(ms.rounded(.up)))
        }
        guard let text = retryAfter?.trimmingCharacters(in: .whitespaces), !text.isEmpty else { return nil }
        if let seconds = Double(text) {
            guard seconds.isFinite, seconds >= 0, seconds < 86_400 else { return nil }
            return .milliseconds(Int64((seconds * 1000).rounded(.up)))
        }
        guard let date = httpDate.date(from: text) else { return nil }
        let seconds = date.timeIntervalSince(now)
        guard seconds > 0, seconds < 86_400 else { return nil }
        return .milliseconds(Int64((seconds * 1000).rounded(.up)))
    }

    /// IMF-fixdate, the form servers must send: `Sun, 06 Nov 1994 08:49:37 GMT`.
    private static let httpDate: DateFormatter = {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"
        return formatter
    }()
}
