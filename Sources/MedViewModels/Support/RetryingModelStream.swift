import MedViewCore
import Synchronization

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
        make(policy: policy, sleep: sleep, onRetry: onRetry) { (number: Int, yield: @escaping @Sendable (ModelEvent) -> Void) in
            for try await event in attempt(number) { yield(event) }
        }
    }

    /// The same retries for an attempt that hands its events straight to `yield` (no stream of
    /// its own, so an event crosses one stream on its way to the consumer, not two). An attempt
    /// returns when its answer is complete and throws when it failed; `yield` may be called from
    /// any thread while the attempt runs, never after it returned.
    public static func make(
        policy: RetryPolicy,
        sleep: @escaping Sleeper = { try await Task.sleep(for: $0) },
        onRetry: @escaping @Sendable (_ nextAttempt: Int, _ error: ModelError) -> Void = { _, _ in },
        attempt: @escaping @Sendable (_ number: Int, _ yield: @escaping @Sendable (ModelEvent) -> Void) async throws -> Void
    ) -> AsyncThrowingStream<ModelEvent, any Error> {
        AsyncThrowingStream { continuation in
            let task = Task {
                var generator = SystemRandomNumberGenerator()
                var number = 1
                while true {
                    let sawDelta = Atomic(false)
                    do {
                        try await attempt(number) { event in
                            if case .delta = event { sawDelta.store(true, ordering: .relaxed) }
                            continuation.yield(event)
                        }
                        continuation.finish()
                        return
                    } catch let error as ModelError where error.retryable && !sawDelta.load(ordering: .relaxed) && number < policy.maxAttempts && !Task.isCancelled {
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
