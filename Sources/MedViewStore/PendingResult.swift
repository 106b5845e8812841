import Synchronization

/// A result that one task delivers once and another awaits.
///
/// Unlike a continuation it exists before anyone waits, so a caller can queue it, do other work
/// (commit the batch holding it, for instance), and await it afterwards. Invariants: it is
/// resolved at most once (later resolutions are ignored) and has at most one waiter. Waiting is
/// not cancellable, like the write it stands for.
final class PendingResult<Value: Sendable>: Sendable {
    private enum State {
        case waiting(CheckedContinuation<Value, any Error>?)
        case resolved(Result<Value, any Error>)
    }

    private let state = Mutex(State.waiting(nil))

    /// Delivers `result` to the waiter, now or when it comes.
    func resolve(_ result: Result<Value, any Error>) {
        let waiter = state.withLock { state -> CheckedContinuation<Value, any Error>? in
            guard case .waiting(let waiter) = state else { return nil }
            state = .resolved(result)
            return waiter
        }
        waiter?.resume(with: result)
    }

    /// The delivered value, waiting for it if needed; throws the delivered error.
    var value: Value {
        get async throws {
            try await withCheckedThrowingContinuation { continuation in
                let resolved = state.withLock { state -> Result<Value, any Error>? in
                    switch state {
                    case .resolved(let result):
                        return result
                    case .waiting(let existing):
                        precondition(existing == nil, "a PendingResult has one waiter")
                        state = .waiting(continuation)
                        return nil
                    }
                }
                if let resolved { continuation.resume(with: resolved) }
            }
        }
    }
}
