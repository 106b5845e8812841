import NIOCore
import Synchronization

/// The connections that have not yet completed an authenticated request or WebSocket upgrade,
/// capped at ``limit`` so that they cannot use up the process's file descriptors.
///
/// At the cap a new connection makes room by closing the oldest such connection that is idle
/// or still sending its request head (the slow-header attacker's state, and a keep-alive
/// connection's); a connection in the middle of a request is never closed for this. When every
/// counted connection is in the middle of a request, the new one is refused. A connection leaves
/// the count for good once a request on it is authenticated, and when it closes.
final class UnauthenticatedConnections: Sendable {
    /// What ``admit(_:)`` decided.
    enum Admission {
        case admitted
        /// Admitted; this older connection was dropped to make room and must be closed.
        case admittedClosing(any Channel)
        /// Every counted connection is busy: refuse this one.
        case refused
    }

    private struct Entry {
        let channel: any Channel
        let order: UInt64
        var busy = false
    }

    private struct State {
        var next: UInt64 = 0
        var entries: [ObjectIdentifier: Entry] = [:]
    }

    /// The most unauthenticated connections open at once.
    let limit: Int
    private let state = Mutex(State())

    init(limit: Int) {
        self.limit = limit
    }

    /// How many connections are counted now.
    var count: Int { state.withLock { $0.entries.count } }

    /// Counts a new connection, if there is room or room can be made.
    func admit(_ channel: any Channel) -> Admission {
        state.withLock { state in
            var dropped: (any Channel)?
            if state.entries.count >= limit {
                guard let oldest = state.entries.filter({ !$0.value.busy }).min(by: { $0.value.order < $1.value.order }) else {
                    return .refused
                }
                state.entries[oldest.key] = nil
                dropped = oldest.value.channel
            }
            state.next += 1
            state.entries[ObjectIdentifier(channel)] = Entry(channel: channel, order: state.next)
            return dropped.map { .admittedClosing($0) } ?? .admitted
        }
    }

    /// Marks a counted connection as in the middle of a request (never dropped) or not.
    func setBusy(_ channel: any Channel, _ busy: Bool) {
        state.withLock { $0.entries[ObjectIdentifier(channel)]?.busy = busy }
    }

    /// A request on this connection was authenticated: it no longer counts.
    func authenticated(_ channel: any Channel) {
        remove(channel)
    }

    /// The connection closed.
    func remove(_ channel: any Channel) {
        _ = state.withLock { $0.entries.removeValue(forKey: ObjectIdentifier(channel)) }
    }
}
