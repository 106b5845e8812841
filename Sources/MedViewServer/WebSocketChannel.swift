import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import MedViewCore
import MedViewProtocol
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1
import NIOWebSocket

/// HTTP/1.1 with WebSocket upgrades on `/v1/ws`, each upgraded socket served by a channel
/// handler rather than a task.
///
/// Hummingbird's WebSocket channel keeps one task per open socket for as long as it is open, and
/// a Swift task keeps the stack slabs its deepest `await` needed until it ends: heaptrack put
/// about 16 KiB of every idle socket in that task and its task groups, and 8 KiB more in this
/// server's frames above it (issue 16). Here the connection's task ends once the upgrade is
/// admitted; an idle socket is its NIO channel, a ``WebSocketFrameHandler`` and its
/// ``WebSocketSession``, and a task exists only while a command is handled or an answer is
/// written.
///
/// Requests that are not upgrades are served by Hummingbird's HTTP/1.1 request loop
/// (`handleHTTP`), unchanged.
struct WebSocketUpgradeChannel: ServerChildChannel, HTTPChannelHandler {
    /// How one connection turned out.
    enum Outcome: Sendable {
        /// Plain HTTP: Hummingbird's request loop serves it.
        case http(NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>)
        /// An upgrade request that was refused (a path that is not `/v1/ws`): an empty 400.
        case refusedUpgrade(NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>)
        /// An upgraded WebSocket: its frame handler, and who asked for it.
        case webSocket(NIOLoopBound<WebSocketFrameHandler>, WebSocketUpgrade)
    }

    struct Value: ServerChildChannelValue {
        let outcome: EventLoopFuture<Outcome>
        let channel: any Channel
    }

    let responder: HTTPChannelHandler.Responder
    let http1: HTTP1Channel.Configuration
    /// The largest single frame the decoder accepts (larger ones close the socket with 1009).
    let maxFrameSize: Int
    /// The largest message, fragments counted together (larger ones get `frame_too_large`).
    let maxMessageBytes: Int
    /// Whether an upgrade request may be upgraded, and as whom (`nil`: refuse it with a 400).
    let authorize: @Sendable (HTTPRequestHead, any Channel) async -> WebSocketUpgrade?
    /// Admits an upgraded socket and attaches its session (or its refusal) to the handler.
    let open: @Sendable (WebSocketConnection, WebSocketUpgrade) async -> Void

    init(
        responder: @escaping HTTPChannelHandler.Responder,
        http1: HTTP1Channel.Configuration,
        maxFrameSize: Int,
        maxMessageBytes: Int,
        authorize: @escaping @Sendable (HTTPRequestHead, any Channel) async -> WebSocketUpgrade?,
        open: @escaping @Sendable (WebSocketConnection, WebSocketUpgrade) async -> Void
    ) {
        self.responder = Self.redirectingLateUpgrades(responder)
        self.http1 = http1
        self.maxFrameSize = maxFrameSize
        self.maxMessageBytes = maxMessageBytes
        self.authorize = authorize
        self.open = open
    }

    /// NIO's upgrader sees only a connection's first request. An upgrade request that comes
    /// later on a kept-alive connection is answered with a 307 to the same path and the
    /// connection closed, so the client asks again on a new connection, where it is upgraded.
    static func redirectingLateUpgrades(_ responder: @escaping HTTPChannelHandler.Responder) -> HTTPChannelHandler.Responder {
        { request, writer, channel in
            guard request.headers[.upgrade]?.lowercased() == "websocket" else {
                return try await responder(request, writer, channel)
            }
            try await writer.writeResponse(HTTPResponse(status: .temporaryRedirect, headerFields: [.connection: "close", .location: request.uri.string]))
            // Ending the request loop with an error closes the connection.
            throw LateUpgrade()
        }
    }

    private struct LateUpgrade: Error {}

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            // What `shouldUpgrade` decided for this connection's upgrade request, if it had one.
            enum Attempt { case none, refused, accepted(WebSocketUpgrade) }
            let attempt = NIOLoopBoundBox(Attempt.none, eventLoop: channel.eventLoop)
            let authorize = self.authorize
            let maxMessageBytes = self.maxMessageBytes
            let upgrader = NIOTypedWebSocketServerUpgrader<Outcome>(
                maxFrameSize: maxFrameSize,
                shouldUpgrade: { channel, head in
                    attempt.value = .refused
                    let promise = channel.eventLoop.makePromise(of: WebSocketUpgrade?.self)
                    promise.completeWithTask { await authorize(head, channel) }
                    return promise.futureResult.map { upgrade in
                        if let upgrade { attempt.value = .accepted(upgrade) }
                        return upgrade.map(\.responseHeaders)
                    }
                },
                upgradePipelineHandler: { channel, _ in
                    channel.eventLoop.makeCompletedFuture {
                        guard case .accepted(let upgrade) = attempt.value else { throw ChannelError.inappropriateOperationForState }
                        let handler = WebSocketFrameHandler(maxMessageBytes: maxMessageBytes)
                        try channel.pipeline.syncOperations.addHandler(handler)
                        return .webSocket(NIOLoopBound(handler, eventLoop: channel.eventLoop), upgrade)
                    }
                }
            )
            let http1 = self.http1
            let upgrades = NIOTypedHTTPServerUpgradeConfiguration<Outcome>(
                upgraders: [upgrader],
                notUpgradingCompletionHandler: { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let sync = channel.pipeline.syncOperations
                        try sync.addHandler(HTTP1ToHTTPServerCodec(secure: false))
                        try sync.addHandlers(http1.additionalChannelHandlers())
                        try sync.addHandler(HTTPConnectionStateHandler(idleTimeout: http1.idleTimeout.map { .init($0) }, logger: logger))
                        let asyncChannel = try NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>(
                            wrappingChannelSynchronously: channel,
                            configuration: .init(isOutboundHalfClosureEnabled: true)
                        )
                        if case .none = attempt.value { return .http(asyncChannel) }
                        return .refusedUpgrade(asyncChannel)
                    }
                }
            )
            var configuration = NIOUpgradableHTTPServerPipelineConfiguration<Outcome>(upgradeConfiguration: upgrades)
            // Hummingbird's request loop pipelines, answers parse errors and validates headers.
            configuration.enablePipelining = false
            configuration.enableErrorHandling = false
            configuration.enableResponseHeaderValidation = false
            configuration.decoderConfiguration.maxHeaderFieldSize = http1.httpDecoder.maxHeaderFieldSize
            configuration.decoderConfiguration.maxHeaderListSize = http1.httpDecoder.maxHeaderListSize
            configuration.decoderConfiguration.maxHeaderFieldCount = http1.httpDecoder.maxHeaderFieldCount
            let outcome = try channel.pipeline.syncOperations.configureUpgradableHTTPServerPipeline(configuration: configuration)
            return Value(outcome: outcome, channel: channel)
        }
    }

    func handle(value: Value, logger: Logger) async {
        do {
            switch try await value.outcome.get() {
            case .http(let asyncChannel):
                await handleHTTP(asyncChannel: asyncChannel, logger: logger)
            case .refusedUpgrade(let asyncChannel):
                try await asyncChannel.executeThenClose { _, outbound in
                    try await outbound.write(contentsOf: [
                        .head(HTTPResponse(status: .badRequest, headerFields: [.connection: "close", .contentLength: "0"])),
                        .end(nil),
                    ])
                }
            case .webSocket(let handler, let upgrade):
                // Returns once the socket is admitted (or refused); the socket stays open.
                await open(WebSocketConnection(channel: value.channel, handler: handler), upgrade)
            }
        } catch {
            logger.debug("http.connection.ended", metadata: ["error.type": "\(type(of: error))"])
        }
    }
}

/// Who asked for a WebSocket, as the upgrade request said.
struct WebSocketUpgrade: Sendable {
    /// Who is calling, as the token said.
    enum Caller: Sendable {
        case authenticated(VerifiedIdentity)
        /// Why authentication failed: the socket opens only to say so, then closes with 4401.
        case refused(ErrorEvent)
    }

    var caller: Caller
    /// Whether the client offered the `medview.v1` subprotocol (it is then echoed back).
    var offeredSubprotocol: Bool
    /// The client's address as this server saw it (for the audit trail).
    var sourceAddress: String?

    var responseHeaders: HTTPHeaders {
        offeredSubprotocol ? ["Sec-WebSocket-Protocol": ProtocolLimits.subprotocol] : [:]
    }
}

/// One upgraded socket, handed to ``WebSocketServing`` while its frame handler waits.
struct WebSocketConnection: Sendable {
    let channel: any Channel
    let handler: NIOLoopBound<WebSocketFrameHandler>

    /// Hands the handler its session; messages that arrived meanwhile go to it first.
    func attach(_ session: WebSocketSession) {
        let handler = self.handler
        channel.eventLoop.execute { handler.value.attach(session) }
    }

    /// Refuses the socket: after the client's first message (or `grace`), one typed error, then a
    /// close with `closeCode`. Writing the instant the upgrade completes makes HummingbirdWSClient
    /// hang intermittently (see STYLE.md); a client that speaks first is answered at once.
    func refuse(_ error: ErrorEvent, closeCode: Int, grace: Duration = .milliseconds(250)) {
        let handler = self.handler
        channel.eventLoop.execute { handler.value.refuse(error, closeCode: closeCode, grace: grace) }
    }
}

/// The server's side of one upgraded socket, for writing: frames go out on the channel.
///
/// While the channel is writable (less than its high-water mark, 64 KiB, waits to go out) a
/// write returns once it is queued; past the mark it returns only when the socket has taken it.
/// So a client that stops reading holds at most the mark plus one event per stream it follows,
/// and its writes then wait, which is what the sweeper's stall check sees.
struct WebSocketWriter: Sendable {
    let channel: any Channel

    func send(text: String) async throws {
        guard channel.isActive else { throw ChannelError.ioOnClosedChannel }
        var buffer = channel.allocator.buffer(capacity: text.utf8.count)
        buffer.writeString(text)
        let frame = WebSocketFrame(fin: true, opcode: .text, data: buffer)
        if channel.isWritable {
            channel.writeAndFlush(frame, promise: nil)
        } else {
            try await channel.writeAndFlush(frame).get()
        }
    }

    func ping() async throws {
        try await channel.writeAndFlush(WebSocketFrame(fin: true, opcode: .ping, data: ByteBuffer(string: "ka"))).get()
    }

    /// Starts the closing handshake; ``WebSocketFrameHandler`` closes the connection when the
    /// client answers, or after its close timeout.
    func close(code: Int, reason: String) async {
        try? await channel.writeAndFlush(WebSocketFrame.close(code: code, reason: reason, allocator: channel.allocator)).get()
    }

    /// Drops the connection at once, unwritten frames and all.
    func drop() {
        channel.close(promise: nil)
    }

    /// Reads the client's frames again after ``WebSocketFrameHandler`` stopped because too many
    /// waited to be handled (turning `autoRead` back on reads at once).
    func resumeReading() {
        channel.setOption(ChannelOptions.autoRead, value: true).whenComplete { _ in }
    }
}

extension WebSocketFrame {
    static func close(code: Int, reason: String, allocator: ByteBufferAllocator) -> WebSocketFrame {
        var data = allocator.buffer(capacity: 2 + reason.utf8.count)
        data.write(webSocketErrorCode: WebSocketErrorCode(codeNumber: code))
        data.writeString(reason)
        return WebSocketFrame(fin: true, opcode: .connectionClose, data: data)
    }
}
