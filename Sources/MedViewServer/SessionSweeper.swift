import Foundation
import Synchronization

/// One task for all WebSocket sessions: closes idle ones and ones whose token expired, and sends
/// keep-alive pings. A task per connection would cost memory on every idle socket.
final class SessionSweeper: Sendable {
    private let tick: Duration
    private struct State {
        var sessions: [String: WebSocketSession] = [:]
        var running = false
    }
    private let state = Mutex(State())

    init(tick: Duration) {
        self.tick = tick
    }

    func add(_ session: WebSocketSession) {
        let start = state.withLock { s -> Bool in
            s.sessions[session.connectionId] = session
            guard !s.running else { return false }
            s.running = true
            return true
        }
        if start {
            Task { await self.run() }
        }
    }

    func remove(_ session: WebSocketSession) {
        state.withLock { _ = $0.sessions.removeValue(forKey: session.connectionId) }
    }

    private func run() async {
        while true {
            try? await Task.sleep(for: tick)
            let sessions = state.withLock { s -> [WebSocketSession]? in
                if s.sessions.isEmpty {
                    s.running = false
                    return nil
                }
                return Array(s.sessions.values)
            }
            guard let sessions else { return }
            let now = ContinuousClock.now
            let date = Date()
            for session in sessions {
                let verdict = session.verdict(now: now, date: date)
                if case .fine = verdict {
                    session.pingIfDue(now: now)
                } else {
                    remove(session)
                    Task { await session.enforce(verdict) }
                }
            }
        }
    }
}
