import Foundation
import MedViewProtocol
import NIOCore
import NIOWebSocket

/// One whole message from a client: its bytes (`nil` when it was larger than the limit).
struct WebSocketMessage: Sendable {
    var data: Data?
    var binary: Bool
}

/// The frames of one upgraded socket, on its event loop: answers pings, runs the closing
/// handshake, joins fragments into messages of at most `maxMessageBytes` (a larger one becomes
/// one "too large" message after its last fragment), and hands each whole message to the
/// connection's ``WebSocketSession``. While the connection is being admitted it keeps what
/// arrives until the session is attached (or the connection refused).
///
/// Frames larger than the decoder's limit, and other protocol errors, are answered by NIO's
/// `WebSocketProtocolErrorHandler` before this handler (close 1009 or 1002).
final class WebSocketFrameHandler: ChannelDuplexHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    /// How long the client has to answer the server's close frame before the connection is dropped.
    static let closeTimeout = TimeAmount.seconds(5)

    private enum Mode {
        case admitting(waiting: [WebSocketMessage])
        case serving(WebSocketSession)
        /// Refused: the error goes out at the client's first message or when `grace` ends.
        case refusing(ErrorEvent, closeCode: Int)
        case finished
    }

    private let maxMessageBytes: Int
    private var mode = Mode.admitting(waiting: [])
    private var context: ChannelHandlerContext?
    /// The message being joined from fragments: its kind and bytes (`nil` between messages, so
    /// an idle socket holds no buffer), and whether it has gone over the limit.
    private var opcode: WebSocketOpcode?
    private var joined: ByteBuffer?
    private var oversized = false
    private var closeSent = false

    init(maxMessageBytes: Int) {
        self.maxMessageBytes = maxMessageBytes
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    // MARK: - Reading

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        // RFC 6455 §5.1: a server closes the connection on an unmasked frame from a client.
        guard frame.maskKey != nil else {
            sendClose(code: 1002, reason: "unmasked frame", context: context)
            return
        }
        // No extension is negotiated, so no reserved bit may be set (§5.2): a compressed frame
        // from a client that assumed permessage-deflate is refused, not read as text.
        guard !frame.rsv1, !frame.rsv2, !frame.rsv3 else {
            sendClose(code: 1002, reason: "reserved bit set", context: context)
            return
        }
        switch frame.opcode {
        case .ping:
            // A client that sends pings and reads nothing gets no more pongs once the socket's
            // buffer is full, so it cannot grow the server's memory.
            guard !closeSent, context.channel.isWritable else { return }
            context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .pong, data: frame.unmaskedData)), promise: nil)
        case .pong:
            break
        case .connectionClose:
            if closeSent {
                context.close(promise: nil)
            } else {
                // Echo the client's code, then close (RFC 6455 §5.5.1).
                var payload = frame.unmaskedData
                var reply = context.channel.allocator.buffer(capacity: 2)
                if let code = payload.readWebSocketErrorCode() { reply.write(webSocketErrorCode: code) }
                closeSent = true
                let channel = context.channel
                context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .connectionClose, data: reply))).whenComplete { _ in
                    channel.close(promise: nil)
                }
            }
        case .text, .binary, .continuation:
            guard !closeSent else { return }
            join(frame)
        default:
            sendClose(code: 1002, reason: "unknown opcode", context: context)
        }
    }

    /// Adds a data frame to the message being joined; hands the message on after its last frame.
    private func join(_ frame: WebSocketFrame) {
        if frame.opcode == .continuation {
            guard opcode != nil else { return }
        } else {
            opcode = frame.opcode
            joined = nil
            oversized = false
            if frame.fin {
                // The usual case, one frame: no joining buffer.
                let tooLarge = frame.length > maxMessageBytes
                deliver(WebSocketMessage(data: tooLarge ? nil : Data(frame.unmaskedData.readableBytesView), binary: frame.opcode == .binary))
                opcode = nil
                return
            }
        }
        if !oversized {
            var data = frame.unmaskedData
            if (joined?.readableBytes ?? 0) + data.readableBytes > maxMessageBytes {
                oversized = true
                joined = nil
            } else if joined == nil {
                joined = data
            } else {
                joined!.writeBuffer(&data)
            }
        }
        guard frame.fin else { return }
        let message = WebSocketMessage(data: oversized ? nil : Data((joined ?? ByteBuffer()).readableBytesView), binary: opcode == .binary)
        opcode = nil
        joined = nil
        oversized = false
        deliver(message)
    }

    private func deliver(_ message: WebSocketMessage) {
        switch mode {
        case .admitting(var waiting):
            waiting.append(message)
            mode = .admitting(waiting: waiting)
            if waiting.count >= WebSocketSession.inboxLimit { setReading(false) }
        case .serving(let session):
            if !session.deliver(message) { setReading(false) }
        case .refusing(let error, let closeCode):
            sendRefusal(error, closeCode: closeCode)
        case .finished:
            break
        }
    }

    private func setReading(_ on: Bool) {
        try? context?.channel.syncOptions?.setOption(ChannelOptions.autoRead, value: on)
    }

    // MARK: - Admission

    /// The connection is admitted: what arrived meanwhile goes to `session` first, in order.
    func attach(_ session: WebSocketSession) {
        guard case .admitting(let waiting) = mode else { return }
        mode = .serving(session)
        var reading = true
        for message in waiting {
            reading = session.deliver(message)
        }
        if waiting.count >= WebSocketSession.inboxLimit || !reading { setReading(reading) }
    }

    /// The connection is refused: tells the client why at its first message or after `grace`.
    func refuse(_ error: ErrorEvent, closeCode: Int, grace: Duration) {
        guard case .admitting(let waiting) = mode, let context else { return }
        if !waiting.isEmpty {
            sendRefusal(error, closeCode: closeCode)
            return
        }
        mode = .refusing(error, closeCode: closeCode)
        context.eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(Int64(grace / .milliseconds(1)))) {
            if case .refusing(let error, let closeCode) = self.mode { self.sendRefusal(error, closeCode: closeCode) }
        }
    }

    private func sendRefusal(_ error: ErrorEvent, closeCode: Int) {
        mode = .finished
        guard let context, !closeSent else { return }
        var text = context.channel.allocator.buffer(capacity: 256)
        text.writeString(ServerEvent.error(error).jsonString())
        context.write(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .text, data: text)), promise: nil)
        sendClose(code: closeCode, reason: error.code.rawValue, context: context)
    }

    // MARK: - Closing

    /// Sends a close frame (once) and drops the connection if the client does not answer in time.
    private func sendClose(code: Int, reason: String, context: ChannelHandlerContext) {
        guard !closeSent else { return }
        closeSent = true
        context.writeAndFlush(wrapOutboundOut(WebSocketFrame.close(code: code, reason: reason, allocator: context.channel.allocator)), promise: nil)
        armCloseTimeout(context: context)
    }

    private func armCloseTimeout(context: ChannelHandlerContext) {
        let channel = context.channel
        context.eventLoop.scheduleTask(in: Self.closeTimeout) { channel.close(promise: nil) }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let frame = unwrapOutboundIn(data)
        if closeSent {
            // Nothing follows a close frame (RFC 6455 §5.5.1).
            promise?.fail(ChannelError.outputClosed)
            return
        }
        if frame.opcode == .connectionClose {
            closeSent = true
            armCloseTimeout(context: context)
        }
        context.write(data, promise: promise)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent {
            // The server is shutting down, after the drain let running answers end and the
            // sweeper let each socket write them out (docs/PROTOCOL.md, "Drain on shutdown").
            mode = .finished
            sendClose(code: 1000, reason: "", context: context)
            return
        }
        if let event = event as? ChannelEvent, event == .inputClosed {
            // The client ended its side without a close frame (the server allows half-closure
            // for HTTP): nothing more can arrive, so the connection is closed.
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        mode = .finished
        joined = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
