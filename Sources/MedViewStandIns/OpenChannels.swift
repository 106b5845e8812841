import HummingbirdCore
import Logging
import NIOCore
import Synchronization

/// The gateway's open TCP connections, so that stopping can end them all as a gateway going away
/// does. Hummingbird's graceful shutdown waits for every connection to close; a WebSocket client
/// that never answers the closing handshake (HummingbirdWSClient can lose a close frame that
/// arrives during its upgrade) or an HTTP client that keeps a connection open would otherwise
/// hold the stand-in's shutdown for ever.
final class OpenChannels: Sendable {
    private let open = Mutex([ObjectIdentifier: any Channel]())

    /// Records `channel` until it closes.
    func track(_ channel: any Channel) {
        let key = ObjectIdentifier(channel)
        open.withLock { $0[key] = channel }
        channel.closeFuture.whenComplete { _ in
            _ = self.open.withLock { $0.removeValue(forKey: key) }
        }
    }

    /// How many connections are open.
    var count: Int { open.withLock { $0.count } }

    /// Closes every open connection.
    func closeAll() {
        for channel in open.withLock({ Array($0.values) }) {
            channel.close(promise: nil)
        }
    }
}

/// A server child channel that records every accepted connection in ``OpenChannels`` before
/// `base` sets it up, including one that never sends a request head (which Hummingbird's
/// graceful shutdown also waits for).
struct TrackedChildChannel<Base: ServerChildChannel>: ServerChildChannel {
    typealias Value = Base.Value
    let base: Base
    let channels: OpenChannels

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channels.track(channel)
        return base.setup(channel: channel, logger: logger)
    }

    func handle(value: Value, logger: Logger) async {
        await base.handle(value: value, logger: logger)
    }
}
