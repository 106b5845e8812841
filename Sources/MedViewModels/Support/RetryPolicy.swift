import MedViewCore

/// When and how long to wait before trying a model request again.
///
/// Exponential backoff with full jitter: before retry `n` (1-based) the wait is uniform in
/// `0 ... min(maxDelay, baseDelay × 2^(n-1))`. Only failures before the first delta are retried
/// (see ``RetryingModelStream``): once text has reached the patient, a retry would repeat it.
public struct RetryPolicy: Sendable, Equatable {
    /// Attempts in all, the first included; 1 means never retry.
    public var maxAttempts: Int
    /// The cap of the first wait.
    public var baseDelay: Duration
    /// No wait is longer than this.
    public var maxDelay: Duration

    public init(maxAttempts: Int = 3, baseDelay: Duration = .milliseconds(200), maxDelay: Duration = .seconds(5)) {
        self.maxAttempts = max(1, maxAttempts)
        self.baseDelay = baseDelay
        self.maxDelay = maxDelay
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
                        number += 1
                        onRetry(number, error)
                        do {
                            try await sleep(policy.delay(beforeRetry: number - 1, using: &generator))
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
