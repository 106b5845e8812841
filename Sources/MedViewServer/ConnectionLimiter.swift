import Synchronization

/// Counts open WebSocket connections per user and enforces the per-user limit.
final class ConnectionLimiter: Sendable {
    let maxPerUser: Int
    private let counts = Mutex([String: Int]())

    init(maxPerUser: Int) {
        self.maxPerUser = maxPerUser
    }

    /// Takes a slot; `false` when the user is at the limit.
    func acquire(_ userId: String) -> Bool {
        counts.withLock { c in
            guard c[userId, default: 0] < maxPerUser else { return false }
            c[userId, default: 0] += 1
            return true
        }
    }

    func release(_ userId: String) {
        counts.withLock { c in
            c[userId, default: 1] -= 1
            if c[userId] == 0 { c[userId] = nil }
        }
    }
}
