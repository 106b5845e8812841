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
        make(policy: policy, sleep: sleep, onRetry: onRetry) { (number: Int, yield: @escaping ModelEventSink) in
            for try await event in attempt(number) {
                guard yield(event) else { return }
            }
        }
    }

    /// The same retries for an attempt that hands its events straight to `yield` (no stream of
    /// its own, so an event crosses one stream on its way to the consumer, not two). An attempt
    /// returns when its answer is complete (or `yield` declined an event: the consumer went away)
    /// and throws when it failed; `yield` may be called from any thread while the attempt runs,
    /// never after it returned.
    public static func make(
        policy: RetryPolicy,
        sleep: @escaping Sleeper = { try await Task.sleep(for: $0) },
        onRetry: @escaping @Sendable (_ nextAttempt: Int, _ error: ModelError) -> Void = { _, _ in },
        attempt: @escaping @Sendable (_ number: Int, _ yield: @escaping ModelEventSink) async throws -> Void
    ) -> AsyncThrowingStream<ModelEvent, any Error> {
        AsyncThrowingStream { continuation in
            let task = Task {
                do {
                    try await run(policy: policy, sleep: sleep, onRetry: onRetry, yield: sink(continuation), attempt: attempt)
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    /// `continuation` as a sink: it declines once the stream's consumer has gone away.
    static func sink(_ continuation: AsyncThrowingStream<ModelEvent, any Error>.Continuation) -> ModelEventSink {
        { event in
            if case .terminated = continuation.yield(event) { return false }
            return true
        }
    }

    /// The retries of ``make(policy:sleep:onRetry:attempt:)`` run in the caller's task, for a
    /// caller that takes the events as they come rather than a stream (``ChatModel/stream(_:into:)``,
    /// or a short reply: no task and no stream of its own). Returns when an attempt completed or
    /// `yield` declined an event; throws the error that ended the call (`CancellationError` if
    /// cancelled while waiting to retry).
    public static func run(
        policy: RetryPolicy,
        sleep: Sleeper = { try await Task.sleep(for: $0) },
        onRetry: @Sendable (_ nextAttempt: Int, _ error: ModelError) -> Void = { _, _ in },
        yield: @escaping ModelEventSink,
        attempt: @Sendable (_ number: Int, _ yield: @escaping ModelEventSink) async throws -> Void
    ) async throws {
        var generator = SystemRandomNumberGenerator()
        var number = 1
        while true {
            let sawDelta = Atomic(false)
            do {
                try await attempt(number) { event in
                    if case .delta = event { sawDelta.store(true, ordering: .relaxed) }
                    return yield(event)
                }
                return
            } catch let error as ModelError where error.retryable && !sawDelta.load(ordering: .relaxed) && number < policy.maxAttempts && !Task.isCancelled {
                guard let wait = policy.delay(beforeRetry: number, after: error, using: &generator) else { throw error }
                number += 1
                onRetry(number, error)
                do {
                    try await sleep(wait)
                } catch {
                    throw CancellationError()
                }
            }
        }
    }
}
