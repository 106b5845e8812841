import Foundation
import HummingbirdCore
import NIOCore
import Synchronization

extension NIOAsyncChannel {
    /// The channel's outbound part type.
    typealias OutboundPart = Outbound
}

/// The status a refused WebSocket upgrade answers with, per connection.
///
/// Hummingbird answers every refused upgrade with 400; API Gateway answers with the status the
/// `$connect` integration returned. ``shouldUpgrade`` records the status for the connection before
/// refusing, and a ``Handler`` in the refused connection's HTTP pipeline (Hummingbird adds
/// `additionalChannelHandlers` only to connections that were not upgraded) puts it in the head.
final class UpgradeRefusalStatus: Sendable {
    /// HTTP response parts as Hummingbird's HTTP/1 channel writes them.
    typealias ResponsePart = HTTP1Channel.Value.OutboundPart

    private let statuses = Mutex([ObjectIdentifier: Int]())

    /// Records the status for the connection (forgotten when it closes).
    func refuse(_ channel: any Channel, status: Int) {
        let key = ObjectIdentifier(channel)
        statuses.withLock { $0[key] = status }
        channel.closeFuture.whenComplete { _ in self.take(key) }
    }

    @discardableResult
    func take(_ key: ObjectIdentifier) -> Int? {
        statuses.withLock { $0.removeValue(forKey: key) }
    }

    /// Rewrites the first response head of a refused connection; removes itself after the first
    /// head either way.
    final class Handler: ChannelOutboundHandler, RemovableChannelHandler {
        typealias OutboundIn = ResponsePart
        typealias OutboundOut = ResponsePart

        let refusals: UpgradeRefusalStatus

        init(_ refusals: UpgradeRefusalStatus) {
            self.refusals = refusals
        }

        func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
            var part = unwrapOutboundIn(data)
            if case .head(var head) = part {
                if let status = refusals.take(ObjectIdentifier(context.channel)), (400...599).contains(status) {
                    head.status = .init(code: status)
                    part = .head(head)
                }
                context.write(wrapOutboundOut(part), promise: promise)
                context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
                return
            }
            context.write(data, promise: promise)
        }
    }
}
