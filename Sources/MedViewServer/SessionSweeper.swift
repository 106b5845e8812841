import Foundation
import ServiceLifecycle
import Synchronization

/// One loop for all WebSocket sessions: closes idle ones and ones whose token expired, and sends
/// keep-alive pings. A task per connection would cost memory on every idle socket.
///
/// A `Service`: it ticks from start-up until graceful shutdown; then it gives every session up
/// to `deliveryGrace` to write out what its streams still hold (the drain, which shuts down
/// before it, has ended every stream), so the server closes sockets only after the terminal
/// events went out.
final class SessionSweeper: Service, Sendable {
    private let tick: Duration
    private let deliveryGrace: Duration
    private let sessions = Mutex([String: WebSocketSession]())

    init(tick: Duration, deliveryGrace: Duration = .seconds(2)) {
        self.tick = tick
        self.deliveryGrace = deliveryGrace
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
        let current = sessions.withLock { Array($0.values) }
        let grace = deliveryGrace
        await withTaskGroup(of: Void.self) { group in
            for session in current {
                group.addTask { await session.finishDelivery(within: grace) }
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
