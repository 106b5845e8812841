import Synchronization

/// Fails a request that stays silent too long: first until the response head, then between body pieces.
///
/// Invariant: there is one deadline at a time; ``heard(next:)`` moves it and switches to the body phase.
final class SilenceWatchdog: Sendable {
    /// What the request is waiting for.
    enum Phase: Sendable { case response, body }
    private struct State { var deadline: ContinuousClock.Instant; var phase: Phase }
    private let state: Mutex<State>
    /// The longest single sleep: a deadline moved earlier is noticed at most this late.
    private let tick: Duration

    init(first: Duration, tick: Duration) {
        state = Mutex(State(deadline: .now + first, phase: .response))
        self.tick = max(tick, .milliseconds(1))
    }

    var phase: Phase { state.withLock { $0.phase } }

    /// Data arrived: the next silence may last `next`.
    func heard(next: Duration) {
        state.withLock {
            $0.deadline = .now + next
            $0.phase = .body
        }
    }

    /// Returns when the current deadline passes without news; throws when cancelled.
    func waitForSilence() async throws {
        while true {
            let deadline = state.withLock { $0.deadline }
            let now = ContinuousClock.now
            if now >= deadline { return }
            try await Task.sleep(until: min(deadline, now + tick), clock: .continuous)
        }
    }
}
