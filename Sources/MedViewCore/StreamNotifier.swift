import Synchronization

/// What one server process tells the others that share its store.
public enum StreamNotice: Sendable, Equatable {
    /// Events were appended to these streams' replay logs (and committed).
    case appended([String])
    /// A client asked, on some process, to cancel this stream; the process running it cancels it.
    case cancelRequested(String)
}

/// How processes sharing one store learn about each other's streams (PostgreSQL `LISTEN/NOTIFY`
/// in production). Without one, a process follows another's stream by polling the store.
public protocol StreamNotifier: Sendable {
    /// Every notice from now on, this process's own included, until the notifier stops. Each call
    /// is a separate subscription; a slow subscriber loses old notices, never blocks the others.
    func notices() -> AsyncStream<StreamNotice>
    /// Asks the process running `streamId` to cancel it.
    func requestCancel(streamId: String) async throws
}

/// A one-slot wake-up: ``ring()`` wakes the waiter, or the next ``wait(timeout:)`` if none waits.
final class Doorbell: Sendable {
    private struct State {
        var rung = false
        var waiter: CheckedContinuation<Void, Never>?
        var generation: UInt64 = 0
        /// The last wait whose timer fired (or that was cancelled).
        var expired: UInt64 = 0
    }

    private let state = Mutex(State())

    func ring() {
        let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
            guard let w = s.waiter else {
                s.rung = true
                return nil
            }
            s.waiter = nil
            return w
        }
        waiter?.resume()
    }

    /// Returns when rung (or already rung since the last wait), after `timeout`, or on cancellation.
    func wait(timeout: Duration) async {
        let generation = state.withLock { s -> UInt64 in
            s.generation &+= 1
            return s.generation
        }
        let timer = Task { [weak self] in
            try? await Task.sleep(for: timeout)
            guard !Task.isCancelled else { return }
            self?.wake(generation: generation)
        }
        defer { timer.cancel() }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let now = state.withLock { s -> Bool in
                    if s.rung || Task.isCancelled || s.expired == generation {
                        s.rung = false
                        return true
                    }
                    s.waiter = c
                    return false
                }
                if now { c.resume() }
            }
        } onCancel: {
            self.wake(generation: generation)
        }
    }

    private func wake(generation: UInt64) {
        let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
            guard s.generation == generation else { return nil }
            s.expired = generation
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume()
    }
}
