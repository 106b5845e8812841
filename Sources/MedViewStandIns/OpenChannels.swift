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
    /// What a connection is, for the forced-shutdown log line.
    enum Kind: String, Sendable {
        /// Accepted, no request read yet.
        case accepted
        case webSocket = "websocket"
        case http
    }

    private let open = Mutex([ObjectIdentifier: (channel: any Channel, kind: Kind)]())

    /// Records `channel` until it closes; recording one twice keeps the later kind.
    func track(_ channel: any Channel, as kind: Kind) {
        let key = ObjectIdentifier(channel)
        open.withLock { $0[key] = (channel, kind) }
        channel.closeFuture.whenComplete { _ in
            _ = self.open.withLock { $0.removeValue(forKey: key) }
        }
    }

    /// How many connections of each kind are open.
    var counts: [String: Int] {
        open.withLock { open in
            var counts: [String: Int] = [:]
            for (_, entry) in open { counts[entry.kind.rawValue, default: 0] += 1 }
            return counts
        }
    }

    /// Closes every open connection.
    func closeAll() {
        for entry in open.withLock({ Array($0.values) }) {
            entry.channel.close(promise: nil)
        }
    }

    /// Records the HTTP connections it is added to (Hummingbird adds `additionalChannelHandlers`
    /// to each connection that is not upgraded).
    final class Handler: ChannelInboundHandler, RemovableChannelHandler {
        typealias InboundIn = Never
        let channels: OpenChannels

        init(_ channels: OpenChannels) {
            self.channels = channels
        }

        func handlerAdded(context: ChannelHandlerContext) {
            channels.track(context.channel, as: .http)
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
        channels.track(channel, as: .accepted)
        return base.setup(channel: channel, logger: logger)
    }

    func handle(value: Value, logger: Logger) async {
        await base.handle(value: value, logger: logger)
    }
}
