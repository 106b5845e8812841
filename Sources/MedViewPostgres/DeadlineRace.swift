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
            let timer = Task {
                try? await Task.sleep(for: deadline)
                if !Task.isCancelled { race.finish(.failure(StoreError.unavailable("\(operation) timed out"))) }
            }
            race.track([worker, timer])
        }
    } onCancel: {
        race.finish(.failure(CancellationError()))
    }
}

/// The first of a piece of work, its deadline and the caller's cancellation
/// (``withinDeadline(_:operation:_:)``): resumes the waiter once and cancels both tasks.
private final class DeadlineRace<T: Sendable>: Sendable {
    private struct State {
        var continuation: CheckedContinuation<T, any Error>?
        var tasks: [Task<Void, Never>] = []
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

    /// The tasks to cancel when the race ends (at once, if it already has).
    func track(_ tasks: [Task<Void, Never>]) {
        let done = state.withLock { s -> Bool in
            if !s.done { s.tasks = tasks }
            return s.done
        }
        if done { for t in tasks { t.cancel() } }
    }

    func finish(_ result: Result<T, any Error>) {
        let (continuation, tasks) = state.withLock { s -> (CheckedContinuation<T, any Error>?, [Task<Void, Never>]) in
            guard !s.done else { return (nil, []) }
            s.done = true
            if s.continuation == nil { s.early = result }
            defer { s.continuation = nil; s.tasks = [] }
            return (s.continuation, s.tasks)
        }
        for t in tasks { t.cancel() }
        continuation?.resume(with: result)
    }
}
