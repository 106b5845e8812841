import MedViewCore
import Synchronization

/// Runs `work` and answers with its outcome, or with ``StoreError/unavailable(_:)`` naming
/// `operation` once `deadline` has passed, whichever comes first; the loser is cancelled.
///
/// Unlike a task group, the answer never waits for work that does not heed cancellation (a
/// connection whose database went silent): such work is left to finish on its own. When the
/// caller is cancelled, the work is cancelled and the caller gets `CancellationError` at once.
func withinDeadline<T: Sendable>(
    _ deadline: Duration,
    operation: String,
    _ work: @escaping @Sendable () async throws -> T
) async throws -> T {
    let race = DeadlineRace<T>()
    return try await withTaskCancellationHandler {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            guard race.begin(continuation) else { return }
            let worker = Task {
                do { race.finish(.success(try await work())) } catch { race.finish(.failure(error)) }
            }
            // The deadline is kept by the shared timer (a dictionary update to arm and to disarm),
            // not by a sleeping task and a Dispatch timer of its own per operation.
            let timer = storeDeadlines.schedule(at: .now + deadline) {
                race.finish(.failure(StoreError.unavailable("\(operation) timed out")))
            }
            race.track(worker, timer: timer)
        }
    } onCancel: {
        race.finish(.failure(CancellationError()))
    }
}

/// Keeps the deadline of every store operation: a tick of 100 ms, so a deadline of seconds is
/// kept within a tenth of a second.
let storeDeadlines = CoarseTimer(tick: .milliseconds(100))

/// The first of a piece of work, its deadline and the caller's cancellation
/// (``withinDeadline(_:operation:_:)``): resumes the waiter once, cancels the work and disarms
/// the deadline.
private final class DeadlineRace<T: Sendable>: Sendable {
    private struct State {
        var continuation: CheckedContinuation<T, any Error>?
        var worker: Task<Void, Never>?
        var timer: UInt64?
        /// Set when the race ended before the waiter arrived (the caller was already cancelled).
        var early: Result<T, any Error>?
        var done = false
    }
    private let state = Mutex(State())

    /// Registers the waiter; false (and the waiter resumed) when the race already ended.
    func begin(_ continuation: CheckedContinuation<T, any Error>) -> Bool {
        let early = state.withLock { s -> Result<T, any Error>? in
            if s.done { return s.early ?? .failure(CancellationError()) }
            s.continuation = continuation
            return nil
        }
        guard let early else { return true }
        continuation.resume(with: early)
        return false
    }

    /// The work to cancel and the deadline to disarm when the race ends (at once, if it already has).
    func track(_ worker: Task<Void, Never>, timer: UInt64) {
        let done = state.withLock { s -> Bool in
            if !s.done {
                s.worker = worker
                s.timer = timer
            }
            return s.done
        }
        if done {
            worker.cancel()
            storeDeadlines.cancel(timer)
        }
    }

    func finish(_ result: Result<T, any Error>) {
        let (continuation, worker, timer) = state.withLock { s -> (CheckedContinuation<T, any Error>?, Task<Void, Never>?, UInt64?) in
            guard !s.done else { return (nil, nil, nil) }
            s.done = true
            if s.continuation == nil { s.early = result }
            defer { s.continuation = nil; s.worker = nil; s.timer = nil }
            return (s.continuation, s.worker, s.timer)
        }
        worker?.cancel()
        if let timer { storeDeadlines.cancel(timer) }
        continuation?.resume(with: result)
    }
}
