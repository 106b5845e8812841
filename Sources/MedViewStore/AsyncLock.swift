import Synchronization

/// A first-in, first-out lock that may be held across `await`.
///
/// `Mutex` cannot be held while suspended, so the store uses this to keep every transaction's
/// statements together on its single connection. Waiters are resumed in arrival order; the lock
/// passes directly to the next waiter on release. Waiting is not cancellable: a waiting task
/// keeps its place (the critical sections it guards are short).
final class AsyncLock: Sendable {
    private struct State {
        var isLocked = false
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state = Mutex(State())

    /// Runs `body` while holding the lock.
    func withLock<T>(_ body: () async throws -> T) async rethrows -> T {
        await acquire()
        defer { release() }
        return try await body()
    }

    private func acquire() async {
        let acquired = state.withLock { state in
            if state.isLocked { return false }
            state.isLocked = true
            return true
        }
        if acquired { return }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let acquiredNow = state.withLock { state in
                if state.isLocked {
                    state.waiters.append(continuation)
                    return false
                }
                state.isLocked = true
                return true
            }
            if acquiredNow { continuation.resume() }
        }
    }

    private func release() {
        let next = state.withLock { state -> CheckedContinuation<Void, Never>? in
            if state.waiters.isEmpty {
                state.isLocked = false
                return nil
            }
            // The lock stays held and passes to the first waiter.
            return state.waiters.removeFirst()
        }
        next?.resume()
    }
}
