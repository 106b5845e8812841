import Foundation
import ServiceLifecycle
import Synchronization

/// One loop for all WebSocket sessions: closes idle ones and ones whose token expired, and sends
/// keep-alive pings. A task per connection would cost memory on every idle socket.
///
/// A `Service`: it ticks from start-up until graceful shutdown.
final class SessionSweeper: Service, Sendable {
    private let tick: Duration
    private let sessions = Mutex([String: WebSocketSession]())

    init(tick: Duration) {
        self.tick = tick
    }

    func add(_ session: WebSocketSession) {
        sessions.withLock { $0[session.connectionId] = session }
    }

    func remove(_ session: WebSocketSession) {
        sessions.withLock { _ = $0.removeValue(forKey: session.connectionId) }
    }

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try? await Task.sleep(for: self.tick)
                self.sweep()
            }
        }
    }

    private func sweep() {
        let current = sessions.withLock { Array($0.values) }
        guard !current.isEmpty else { return }
        let now = ContinuousClock.now
        let date = Date()
        for session in current {
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
