import Hummingbird
import HummingbirdCore
import Logging
import NIOCore

/// The HTTP/1.1 + WebSocket upgrade channel (``WebSocketUpgradeChannel``) with a ``ConnectionGuard`` on every
/// connection: its raw handler before the HTTP parser, its parts handler right after it (before
/// the upgrade handler, which Hummingbird's own `additionalChannelHandlers` come after, so they
/// would see neither the first request's head nor its parse errors).
struct GuardedHTTPChannel: ServerChildChannel {
    typealias Value = WebSocketUpgradeChannel.Value

    let base: WebSocketUpgradeChannel
    let settings: ConnectionGuard.Settings

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        let connectionGuard = ConnectionGuard(settings: settings)
        do {
            try connectionGuard.installRawHandler(on: channel)
        } catch {
            return channel.eventLoop.makeFailedFuture(error)
        }
        let bound = NIOLoopBound(connectionGuard, eventLoop: channel.eventLoop)
        return base.setup(channel: channel, logger: logger).flatMapThrowing { value in
            try bound.value.installPartsHandler(on: channel)
            return value
        }
    }

    func handle(value: Value, logger: Logger) async {
        await base.handle(value: value, logger: logger)
    }
}

extension HTTPServerBuilder {
    /// HTTP/1.1 with WebSocket upgrades served by `webSocket`, every connection guarded.
    static func guardedHTTP1WebSocketUpgrade(
        webSocket: WebSocketServing,
        http1: HTTP1Channel.Configuration,
        maxFrameSize: Int,
        maxMessageBytes: Int,
        guardSettings: ConnectionGuard.Settings
    ) -> HTTPServerBuilder {
        .init { responder in
            GuardedHTTPChannel(
                base: WebSocketUpgradeChannel(
                    responder: responder,
                    http1: http1,
                    maxFrameSize: maxFrameSize,
                    maxMessageBytes: maxMessageBytes,
                    authorize: { head, channel in await webSocket.authorize(head, channel: channel) },
                    open: { connection, upgrade in await webSocket.open(connection, upgrade: upgrade) }
                ),
                settings: guardSettings
            )
        }
    }
}
