import Foundation
import Logging
import MedViewProtocol
import NIOCore
import NIOHTTP1

/// The HTTP layer's defences for one connection, applied before any route runs
/// (docs/SECURITY.md): timeouts, request head limits, parser errors, the `Origin` check and the
/// cap on unauthenticated connections. Every refusal is a typed JSON error, after which the
/// connection closes.
///
/// It works through two handlers on the connection's event loop:
/// - ``RawHandler``, first in the pipeline, sees the bytes as they arrive: it measures each
///   request head with a ``RequestHeadScanner`` before the HTTP parser buffers it, and writes
///   refusals straight to the socket.
/// - ``PartsHandler``, right after the HTTP parser (and before the WebSocket upgrade handler),
///   sees each decoded request head (for the `Origin` check), the end of each request and
///   response (to know when the connection is idle) and the parser's errors; once a WebSocket
///   upgrade is answered (101) both handlers leave the pipeline.
///
/// One deadline at a time applies, and which one depends on the phase:
/// - before the first request head is complete: the connection's start + `headerTimeout`;
/// - waiting for the next request on a keep-alive connection: the previous response's end +
///   `idleTimeout`; once a byte of that request arrives, that byte's time + `headerTimeout`;
/// - while a request body is being read: the last byte's time + `headerTimeout`;
/// - while a request is being answered (an SSE stream can take minutes): none.
///
/// A head that is still incomplete at its deadline gets `request_timeout` (408); a connection on
/// which nothing at all arrived is closed without an answer (so a browser's unused preconnect
/// never reads an error meant for nobody).
final class ConnectionGuard {
    /// What every connection's guard shares.
    struct Settings: Sendable {
        var limits: HTTPConnectionLimits
        var origins: OriginPolicy
        var unauthenticated: UnauthenticatedConnections
        var metrics: ServerMetrics
        var logger: Logger
    }

    private enum Phase {
        /// Waiting for a request head; `first` for the connection's first request.
        case awaitingHead(first: Bool)
        /// Bytes of a request head are arriving.
        case readingHead
        /// A request head was decoded; its body is read and it is answered.
        case inRequest
        /// Refused or closing: whatever else arrives is dropped.
        case done
        /// A WebSocket now: its own limits apply.
        case upgraded
    }

    let settings: Settings
    // The contexts are cleared when their handlers leave the pipeline (on close at the latest),
    // which ends the reference cycle handler → guard → context → handler.
    private var rawContext: ChannelHandlerContext?
    private var partsContext: ChannelHandlerContext?
    private var phase = Phase.awaitingHead(first: true)
    private var scanner: RequestHeadScanner
    /// When the current phase's time limit runs out (`nil`: none applies).
    private var deadline: NIODeadline?
    private var timer: Scheduled<Void>?
    /// When ``timer`` fires.
    private var timerDeadline: NIODeadline?
    /// Decoded request heads whose responses have not ended.
    private var openRequests = 0
    /// Whether a request body is still being read.
    private var readingBody = false
    /// Whether a response head was written and its end not yet.
    private var responseOpen = false
    /// Whether the request being answered asks for a WebSocket upgrade that has not been
    /// answered yet: anything but a 101 (Hummingbird's own refusal of a malformed upgrade, a
    /// path with no WebSocket route) or a close before any answer counts as `upgrade_error`.
    private var upgradePending = false

    init(settings: Settings) {
        self.settings = settings
        self.scanner = RequestHeadScanner(limits: settings.limits)
    }

    // MARK: Installing

    /// Installs the raw handler first in the pipeline (before the HTTP parser exists).
    func installRawHandler(on channel: any Channel) throws {
        try channel.pipeline.syncOperations.addHandler(RawHandler(owner: self), position: .first)
    }

    /// Installs the parts handler right after the HTTP request decoder, then admits the
    /// connection under the cap on unauthenticated connections (refusing it if there is no room).
    func installPartsHandler(on channel: any Channel) throws {
        let decoder = try channel.pipeline.syncOperations.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self)
        try channel.pipeline.syncOperations.addHandler(PartsHandler(owner: self), position: .after(decoder))
        channel.closeFuture.whenComplete { [unauthenticated = settings.unauthenticated] _ in unauthenticated.remove(channel) }
        switch settings.unauthenticated.admit(channel) {
        case .admitted:
            break
        case .admittedClosing(let older):
            settings.logger.debug("http.connection.dropped", metadata: ["reason": "unauthenticated_connection_limit"])
            older.close(promise: nil)
        case .refused:
            settings.logger.debug("http.connection.refused", metadata: ["reason": "unauthenticated_connection_limit"])
            refuse(.tooManyConnections, "Too many connections are open; try again shortly.", retryAfter: 1)
            return
        }
        arm(.now() + settings.limits.headerTimeout.timeAmount)
    }

    // MARK: Events from the handlers

    fileprivate func bytesArrived(_ buffer: inout ByteBuffer) -> Bool {
        switch phase {
        case .done:
            return false
        case .upgraded:
            return true
        case .inRequest:
            if readingBody { arm(.now() + settings.limits.headerTimeout.timeAmount) }
            return true
        case .awaitingHead(let first):
            phase = .readingHead
            if !first { arm(.now() + settings.limits.headerTimeout.timeAmount) }
            return scanHead(buffer)
        case .readingHead:
            return scanHead(buffer)
        }
    }

    private func scanHead(_ buffer: ByteBuffer) -> Bool {
        switch scanner.scan(buffer.readableBytesView) {
        case .incomplete:
            return true
        case .complete:
            // The parser takes it from here; its decoded head moves the phase on. (Bytes after
            // the blank line, possibly a pipelined next request, are bounded by the parser's limits.)
            return true
        case .violation(.requestLineTooLong):
            refuse(.uriTooLong, "The request line is longer than \(settings.limits.maxRequestLineBytes) bytes.")
            return false
        case .violation(.tooManyHeaderFields):
            refuse(.headersTooLarge, "More than \(settings.limits.maxHeaderCount) header fields.")
            return false
        case .violation(.headTooLarge):
            refuse(.headersTooLarge, "The request head is larger than \(settings.limits.maxHeaderBytes) bytes.")
            return false
        }
    }

    /// Whether the request may go on to the routes.
    fileprivate func requestHeadDecoded(_ head: HTTPRequestHead) -> Bool {
        switch phase {
        case .done, .upgraded:
            return false
        case .awaitingHead, .readingHead, .inRequest:
            break
        }
        let isUpgrade = head.headers.contains(name: "upgrade")
        if OriginPolicy.applies(method: head.method.rawValue, isUpgrade: isUpgrade),
           !settings.origins.allows(origin: head.headers.first(name: "origin"), host: head.headers.first(name: "host")) {
            if isUpgrade { settings.metrics.connectionAttempt(.websocket, .originRefused) }
            refuse(.originNotAllowed, "This server does not accept requests from the page's origin.")
            return false
        }
        upgradePending = isUpgrade
        if isUpgrade, let problem = Self.webSocketUpgradeProblem(head.headers) {
            // NIO would close such a request without a word; the client gets a typed error.
            refuse(.malformedRequest, problem)
            return false
        }
        phase = .inRequest
        openRequests += 1
        readingBody = true
        setBusy(true)
        arm(.now() + settings.limits.headerTimeout.timeAmount)
        return true
    }

    /// Why a WebSocket upgrade request cannot be upgraded (RFC 6455 §4.2.1), or `nil`.
    static func webSocketUpgradeProblem(_ headers: HTTPHeaders) -> String? {
        guard headers[canonicalForm: "upgrade"].contains(where: { $0.lowercased() == "websocket" }) else { return nil }
        guard headers[canonicalForm: "sec-websocket-version"] == ["13"] else {
            return "A WebSocket upgrade needs `Sec-WebSocket-Version: 13`."
        }
        let keys = headers["sec-websocket-key"]
        guard keys.count == 1, let key = Data(base64Encoded: keys[0].trimmingCharacters(in: .whitespaces)), key.count == 16 else {
            return "A WebSocket upgrade needs one `Sec-WebSocket-Key` of 16 bytes in base64."
        }
        return nil
    }

    fileprivate func requestEnded() {
        readingBody = false
        if case .inRequest = phase { arm(nil) }
    }

    /// Whether this head upgrades the connection (a 101).
    fileprivate func responseHeadWritten(_ head: HTTPResponseHead) -> Bool {
        settleUpgrade(upgraded: head.status == .switchingProtocols)
        if head.status == .switchingProtocols { return true }
        if head.status.code >= 200 { responseOpen = true }
        return false
    }

    fileprivate func responseEnded() {
        responseOpen = false
        openRequests = max(0, openRequests - 1)
        guard case .inRequest = phase, openRequests == 0, !readingBody else { return }
        phase = .awaitingHead(first: false)
        scanner = RequestHeadScanner(limits: settings.limits)
        setBusy(false)
        arm(.now() + settings.limits.idleTimeout.timeAmount)
    }

    fileprivate func parserFailed(_ error: HTTPParserError) {
        if error == .headerOverflow {
            refuse(.headersTooLarge, "The request head is too large.")
        } else {
            refuse(.malformedRequest, "The request is not valid HTTP/1.1.")
        }
    }

    /// Counts an upgrade request that ended without a 101 as a failed WebSocket attempt.
    fileprivate func settleUpgrade(upgraded: Bool) {
        guard upgradePending else { return }
        upgradePending = false
        if !upgraded { settings.metrics.connectionAttempt(.websocket, .upgradeError) }
    }

    // MARK: Time limits

    /// Sets the current deadline. One timer runs at a time: a later deadline lets it fire and
    /// set itself again (no rescheduling on every byte of a body), an earlier one replaces it.
    private func arm(_ newDeadline: NIODeadline?) {
        deadline = newDeadline
        guard let newDeadline, let context = rawContext else { return }
        if let timerDeadline, timer != nil {
            guard newDeadline < timerDeadline else { return }
            cancelTimer()
        }
        schedule(at: newDeadline, context: context)
    }

    private func cancelTimer() {
        timer?.cancel()
        timer = nil
        timerDeadline = nil
    }

    private func schedule(at when: NIODeadline, context: ChannelHandlerContext) {
        let loop = context.eventLoop.assumeIsolated()
        timerDeadline = when
        timer = loop.scheduleTask(deadline: when) { [self] in
            timer = nil
            timerDeadline = nil
            guard let deadline else { return }
            if deadline > .now() {
                schedule(at: deadline, context: context)
            } else {
                timedOut()
            }
        }
    }

    private func timedOut() {
        switch phase {
        case .awaitingHead:
            close()
        case .readingHead:
            refuse(.requestTimeout, "The request head did not arrive in time.")
        case .inRequest:
            if readingBody, !responseOpen {
                refuse(.requestTimeout, "The request body did not arrive in time.")
            } else {
                close()
            }
        case .done, .upgraded:
            break
        }
    }

    // MARK: Endings

    /// Answers with a typed JSON error (unless a response is already being written) and closes.
    private func refuse(_ code: ErrorCode, _ message: String, retryAfter: Int? = nil) {
        settleUpgrade(upgraded: false)
        settings.metrics.error(code.rawValue)
        settings.logger.debug("http.request.refused", metadata: ["error.code": "\(code.rawValue)"])
        guard let context = rawContext, !responseOpen else {
            close()
            return
        }
        phase = .done
        deadline = nil
        let body = APIError(code, message).errorBody
        var head = "HTTP/1.1 \(code.httpStatus) \(HTTPResponseStatus(statusCode: code.httpStatus).reasonPhrase)\r\n"
        head += "Content-Type: application/json; charset=utf-8\r\nCache-Control: no-store\r\n"
        if let retryAfter { head += "Retry-After: \(retryAfter)\r\n" }
        head += "Content-Length: \(body.count)\r\nConnection: close\r\n\r\n"
        var buffer = context.channel.allocator.buffer(capacity: head.utf8.count + body.count)
        buffer.writeString(head)
        buffer.writeBytes(body)
        let channel = context.channel
        context.writeAndFlush(NIOAny(buffer)).whenComplete { _ in channel.close(promise: nil) }
        // A peer that never reads must not keep the connection open either.
        channel.eventLoop.scheduleTask(in: .seconds(2)) { channel.close(promise: nil) }
        endInput()
    }

    private func close() {
        settleUpgrade(upgraded: false)
        phase = .done
        deadline = nil
        endInput()
        rawContext?.channel.close(promise: nil)
    }

    /// Tells the handlers after the parser that no more input comes: the upgrade handler, still
    /// waiting for a first request, then ends its negotiation as for a client that went away
    /// (Hummingbird logs that at trace level, not as an error for every refused connection).
    private func endInput() {
        partsContext?.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
    }

    /// The connection is a WebSocket now: its own limits apply, and both handlers leave.
    fileprivate func upgraded() {
        phase = .upgraded
        deadline = nil
        cancelTimer()
        if let partsContext { partsContext.pipeline.syncOperations.removeHandler(context: partsContext, promise: nil) }
        if let rawContext { rawContext.pipeline.syncOperations.removeHandler(context: rawContext, promise: nil) }
    }

    private func setBusy(_ busy: Bool) {
        if let channel = rawContext?.channel { settings.unauthenticated.setBusy(channel, busy) }
    }

    // MARK: Handlers

    /// First in the pipeline: measures request heads in the bytes as they arrive.
    final class RawHandler: ChannelInboundHandler, RemovableChannelHandler {
        typealias InboundIn = ByteBuffer
        typealias InboundOut = ByteBuffer
        let owner: ConnectionGuard

        init(owner: ConnectionGuard) {
            self.owner = owner
        }

        func handlerAdded(context: ChannelHandlerContext) {
            owner.rawContext = context
        }

        func handlerRemoved(context: ChannelHandlerContext) {
            owner.cancelTimer()
            owner.rawContext = nil
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var buffer = unwrapInboundIn(data)
            if owner.bytesArrived(&buffer) {
                context.fireChannelRead(data)
            }
        }

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            // Graceful shutdown: a connection between requests, or still sending its head, has
            // nothing to finish; close it now rather than let it hold the shutdown until a timeout.
            if event is ChannelShouldQuiesceEvent {
                switch owner.phase {
                case .awaitingHead, .readingHead: owner.close()
                case .inRequest, .done, .upgraded: break
                }
            }
            context.fireUserInboundEventTriggered(event)
        }

        func channelInactive(context: ChannelHandlerContext) {
            owner.cancelTimer()
            owner.settleUpgrade(upgraded: false)
            if case .upgraded = owner.phase {} else { owner.phase = .done }
            context.fireChannelInactive()
        }
    }

    /// Right after the HTTP parser: sees decoded requests, written responses and parser errors.
    final class PartsHandler: ChannelDuplexHandler, RemovableChannelHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias InboundOut = HTTPServerRequestPart
        typealias OutboundIn = HTTPServerResponsePart
        typealias OutboundOut = HTTPServerResponsePart
        let owner: ConnectionGuard
        /// Set once a request was refused: nothing more goes up the pipeline.
        private var discarding = false
        /// Set when the 101 passed: the handlers leave once it is flushed. (Leaving inside
        /// `write` would lose the flush of the upgrade handler's `writeAndFlush`.)
        private var leaveAfterFlush = false

        init(owner: ConnectionGuard) {
            self.owner = owner
        }

        func handlerAdded(context: ChannelHandlerContext) {
            owner.partsContext = context
        }

        func handlerRemoved(context: ChannelHandlerContext) {
            owner.partsContext = nil
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard !discarding else { return }
            switch unwrapInboundIn(data) {
            case .head(let head):
                guard owner.requestHeadDecoded(head) else {
                    discarding = true
                    return
                }
            case .body:
                break
            case .end:
                owner.requestEnded()
            }
            context.fireChannelRead(data)
        }

        func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
            switch unwrapOutboundIn(data) {
            case .head(let head):
                if owner.responseHeadWritten(head) {
                    // The 101: pass it on, then leave (the WebSocket handlers take over).
                    leaveAfterFlush = true
                }
            case .body:
                break
            case .end:
                owner.responseEnded()
            }
            context.write(data, promise: promise)
        }

        func flush(context: ChannelHandlerContext) {
            context.flush()
            if leaveAfterFlush {
                leaveAfterFlush = false
                owner.upgraded()
            }
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            if let error = error as? HTTPParserError {
                discarding = true
                owner.parserFailed(error)
                return
            }
            context.fireErrorCaught(error)
        }
    }
}

fileprivate extension Duration {
    /// The same length of time as a NIO `TimeAmount`.
    var timeAmount: TimeAmount {
        .nanoseconds(components.seconds * 1_000_000_000 + components.attoseconds / 1_000_000_000)
    }
}
