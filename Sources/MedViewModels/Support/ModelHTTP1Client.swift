import MedViewCore
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// A lean HTTP/1.1 client for model calls: one POST at a time per connection, connections kept
/// alive and reused per origin (plain TCP or TLS), nothing else.
///
/// Model calls are all alike (a POST with a body already in memory, a streamed answer read by a
/// ``ModelResponseReceiver`` on the connection's event loop), so this client does only that:
///
/// - the request's head and body go out in one write and one flush (one system call, so the
///   provider wakes once);
/// - the response's parts go to the receiver as the decoder hands them on, on the connection's
///   loop, with no futures or state machines between;
/// - a connection whose response ended with keep-alive goes back to its origin's idle list, the
///   most recently used first; one that failed, was cancelled or was left mid-answer is closed;
/// - a reused connection the provider had closed meanwhile (its keep-alive ran out as the request
///   went out) is replaced once by a fresh one, when not a byte of the response had arrived;
/// - TLS verifies the provider's certificate and name against the system's trust roots (or the
///   configured ones) and offers only `http/1.1` by ALPN.
///
/// Redirects are not followed, bodies are not decompressed, no proxy is used: a model API answers
/// directly, as with ``ModelHTTP/asyncHTTPClient(_:)``.
public final class ModelHTTP1Client: Sendable {
    /// How connections are made and kept.
    public struct Configuration: Sendable {
        /// The longest wait for a TCP connection (TLS handshake excluded: the response timeout covers it).
        public var connectTimeout: Duration
        /// A pooled connection unused this long is closed.
        public var idleConnectionTimeout: Duration
        /// The most idle connections kept per origin; more are closed when their answers end.
        public var maxIdleConnectionsPerOrigin: Int
        /// TLS for `https` origins: full verification against the system's roots unless changed.
        public var tls: TLSConfiguration

        /// The defaults: 10 s to connect, idle connections closed after 50 s, at most 512 per origin.
        public init(
            connectTimeout: Duration = .seconds(10), idleConnectionTimeout: Duration = .seconds(50),
            maxIdleConnectionsPerOrigin: Int = 512, tls: TLSConfiguration = .makeClientConfiguration()
        ) {
            self.connectTimeout = connectTimeout
            self.idleConnectionTimeout = idleConnectionTimeout
            self.maxIdleConnectionsPerOrigin = maxIdleConnectionsPerOrigin
            var tls = tls
            tls.applicationProtocols = ["http/1.1"]
            self.tls = tls
        }
    }

    /// The client model calls go through unless a caller passes another (one per process).
    public static let shared = ModelHTTP1Client()

    let configuration: Configuration
    private let group: any EventLoopGroup
    private let tlsContext: Result<NIOSSLContext, any Error>
    private let pool: NIOLockedValueBox<[ModelOrigin: [PooledConnection]]>

    /// A client on NIO's shared event loops.
    public init(configuration: Configuration = .init(), group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) {
        self.configuration = configuration
        self.group = group
        self.tlsContext = Result { try NIOSSLContext(configuration: configuration.tls) }
        self.pool = NIOLockedValueBox([:])
    }

    /// How many idle connections the pool holds now (for tests and diagnostics).
    public var idleConnections: Int {
        pool.withLockedValue { $0.values.reduce(0) { $0 + $1.count } }
    }

    /// Closes every idle connection (those in use close when their answers end).
    public func closeIdleConnections() {
        let all = pool.withLockedValue { pool in
            defer { pool.removeAll() }
            return pool.values.flatMap { $0 }
        }
        for connection in all { connection.channel.close(promise: nil) }
    }

    /// Sends `request` and hands its response to `receiver` on the connection's event loop.
    /// The exchange's future succeeds when the response ended and `receiver` accepted its end.
    ///
    /// A `held` request takes its connection (or starts making one) at once, but not a byte of it
    /// is written until ``ModelExchange/release(first:)``; cancelled before that, it leaves the
    /// connection to the pool unused. A held request on a kept connection does nothing on the
    /// connection's event loop until it is released: the release is its one hop there.
    ///
    /// - Throws: ``ModelHTTPError/invalidURL`` when the URL is not an http(s) URL this client can call.
    func execute(_ request: StreamingHTTPRequest, receiver: any ModelResponseReceiver, deadline: NIODeadline, held: Bool = false) throws(ModelHTTPError) -> ModelExchange {
        guard let target = ModelURL(request.url) else { throw .invalidURL }
        let pooled = takeIdle(target.origin)
        let loop = pooled?.channel.eventLoop ?? group.next()
        let exchange = ModelExchange(eventLoop: loop, receiver: receiver, held: held)
        let head = Self.head(for: request, target: target)
        let body = ByteBuffer(bytes: request.body)
        let fresh: @Sendable () -> Void = { [self] in
            connect(target.origin, on: loop) { $0.handler.begin(exchange, head: head, body: body, onStale: nil) } failed: { exchange.finish(.failure($0)) }
        }
        let send: @Sendable () -> Void = {
            exchange.armDeadline(deadline)
            if let pooled {
                pooled.handler.begin(exchange, head: head, body: body) { _ in fresh() }
            } else {
                fresh()
            }
        }
        if held, let pooled {
            exchange.startWhenReleased(send) { [self] in release(pooled.handler, channel: pooled.channel, origin: target.origin) }
        } else if loop.inEventLoop {
            send()
        } else {
            loop.execute(send)
        }
        return exchange
    }

    /// The request head: the caller's headers, plus `host` and `content-length` unless present.
    static func head(for request: StreamingHTTPRequest, target: ModelURL) -> HTTPRequestHead {
        var headers = request.headers
        if !headers.contains(name: "host") { headers.add(name: "host", value: target.origin.hostHeader) }
        if !headers.contains(name: "content-length") { headers.add(name: "content-length", value: String(request.body.count)) }
        return HTTPRequestHead(version: .http1_1, method: .POST, uri: target.path, headers: headers)
    }

    private func takeIdle(_ origin: ModelOrigin) -> PooledConnection? {
        let now = NIODeadline.now()
        let limit = TimeAmount.nanoseconds(Int64(clamping: configuration.idleConnectionTimeout.nanoseconds))
        var stale: [PooledConnection] = []
        let found: PooledConnection? = pool.withLockedValue { pool in
            while let candidate = pool[origin]?.popLast() {
                if candidate.channel.isActive, candidate.since + limit > now { return candidate }
                stale.append(candidate)
            }
            return nil
        }
        for connection in stale { connection.channel.close(promise: nil) }
        return found
    }

    /// Puts a connection whose answer ended back in its origin's idle list (or closes it when the
    /// list is full), and closes it once it has been idle too long.
    fileprivate func release(_ handler: ModelConnectionHandler, channel: any Channel, origin: ModelOrigin) {
        let connection = PooledConnection(channel: channel, handler: handler, since: .now())
        let kept = pool.withLockedValue { pool in
            var list = pool[origin, default: []]
            guard list.count < configuration.maxIdleConnectionsPerOrigin else { return false }
            list.append(connection)
            pool[origin] = list
            return true
        }
        guard kept else { return channel.close(promise: nil) }
        handler.idleUntil(.now() + .nanoseconds(Int64(clamping: configuration.idleConnectionTimeout.nanoseconds))) { [self] in
            pool.withLockedValue { pool in pool[origin]?.removeAll { $0.channel === channel } }
            channel.close(promise: nil)
        }
    }

    private func connect(_ origin: ModelOrigin, on loop: any EventLoop, connected: @escaping @Sendable (ConnectedChannel) -> Void, failed: @escaping @Sendable (any Error) -> Void) {
        let tls: NIOSSLContext?
        switch (origin.tls, tlsContext) {
        case (false, _): tls = nil
        case (true, .success(let context)): tls = context
        case (true, .failure): return failed(ModelHTTPError.tlsUnavailable)
        }
        let handler = ModelConnectionHandler(origin: origin, client: self)
        let serverName = origin.isIPAddress ? nil : origin.host
        ClientBootstrap(group: loop)
            .connectTimeout(.nanoseconds(Int64(clamping: configuration.connectTimeout.nanoseconds)))
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    if let tls {
                        try sync.addHandler(try NIOSSLClientHandler(context: tls, serverHostname: serverName))
                    }
                    try sync.addHTTPClientHandlers()
                    try sync.addHandler(handler)
                }
            }
            .connect(host: origin.host, port: origin.port)
            .whenComplete { result in
                switch result {
                case .success(let channel): connected(ConnectedChannel(channel: channel, handler: handler))
                case .failure(let error): failed(Self.connectFailure(error))
                }
            }
    }

    private static func connectFailure(_ error: any Error) -> ModelHTTPError {
        if let channelError = error as? ChannelError, case .connectTimeout = channelError { return .connectTimedOut }
        return ModelConnectionHandler.classify(error) == .tlsFailed ? .tlsFailed : .connectFailed
    }
}

/// A failure of ``ModelHTTP1Client`` below HTTP; its description names no host, path or data.
enum ModelHTTPError: Error, Equatable, CustomStringConvertible {
    case invalidURL
    case connectFailed
    case connectTimedOut
    case tlsUnavailable
    case tlsFailed
    case connectionClosed
    case malformedResponse
    case deadlineExceeded
    case cancelled

    var description: String {
        switch self {
        case .invalidURL: "the URL is not an http or https URL"
        case .connectFailed: "could not connect"
        case .connectTimedOut: "connecting timed out"
        case .tlsUnavailable: "TLS is not available (its configuration could not be loaded)"
        case .tlsFailed: "the TLS handshake failed"
        case .connectionClosed: "the connection closed before the response ended"
        case .malformedResponse: "the response is not valid HTTP/1.1"
        case .deadlineExceeded: "the request's deadline passed"
        case .cancelled: "cancelled"
        }
    }

    /// Whether this is a timeout (the transport reports it as one).
    var isTimeout: Bool { self == .connectTimedOut || self == .deadlineExceeded }
}

/// Scheme, host and port: the connections a request may reuse.
struct ModelOrigin: Hashable, Sendable {
    var tls: Bool
    var host: String
    var port: Int

    /// The `host` header: the port only when it is not the scheme's default.
    var hostHeader: String {
        let name = host.contains(":") ? "[\(host)]" : host
        return port == (tls ? 443 : 80) ? name : "\(name):\(port)"
    }

    /// Whether the host is an IP address (no SNI is sent for one).
    var isIPAddress: Bool {
        host.contains(":") || host.allSatisfy { $0 == "." || $0.isASCII && $0.isNumber }
    }
}

/// An `http` or `https` URL split into its origin and its request target.
struct ModelURL: Equatable, Sendable {
    var origin: ModelOrigin
    /// The path and query (`/` when the URL has none); a fragment is dropped.
    var path: String

    /// Parses `url`; nil for another scheme, user information, an empty host or a bad port.
    init?(_ url: String) {
        let lowered = url.prefix(8).lowercased()
        let tls: Bool
        let rest: Substring
        if lowered.hasPrefix("https://") {
            tls = true
            rest = url.dropFirst(8)
        } else if lowered.hasPrefix("http://") {
            tls = false
            rest = url.dropFirst(7)
        } else {
            return nil
        }
        let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" || $0 == "#" } ?? rest.endIndex
        let authority = rest[..<authorityEnd]
        var path = String(rest[authorityEnd...])
        if let hash = path.firstIndex(of: "#") { path = String(path[..<hash]) }
        if path.isEmpty || path.hasPrefix("?") { path = "/" + path }
        guard !authority.contains("@"), !authority.isEmpty else { return nil }
        var host: Substring
        var portText: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { return nil }
            host = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { return nil }
                portText = after.dropFirst()
            }
        } else if let colon = authority.lastIndex(of: ":") {
            host = authority[..<colon]
            portText = authority[authority.index(after: colon)...]
        } else {
            host = authority
        }
        guard !host.isEmpty else { return nil }
        var port = tls ? 443 : 80
        if let portText {
            guard let value = Int(portText), (1...65_535).contains(value) else { return nil }
            port = value
        }
        self.origin = ModelOrigin(tls: tls, host: host.lowercased(), port: port)
        self.path = path
    }
}

/// Receives one model response on the connection's event loop.
protocol ModelResponseReceiver: AnyObject, Sendable {
    func receiveHead(_ head: HTTPResponseHead, control: any ModelExchangeControl)
    func receiveBody(_ buffer: ByteBuffer, control: any ModelExchangeControl)
    func receiveError(_ error: any Error, control: any ModelExchangeControl)
    /// The response ended; throws when what arrived is not an answer.
    func receiveEnd(control: any ModelExchangeControl) throws
}

/// What a receiver may do to the request it reads: both AsyncHTTPClient's task and ``ModelExchange``.
protocol ModelExchangeControl: Sendable {
    var eventLoop: any EventLoop { get }
    /// Ends the request with `reason` (the connection is closed).
    func fail(reason: any Error)
    /// Ends the request; once the response has ended this does nothing.
    func cancel()
}

/// One request on ``ModelHTTP1Client``: its outcome, its deadline, and the connection it runs on.
/// Every mutable field is touched only on `eventLoop`.
final class ModelExchange: ModelExchangeControl, @unchecked Sendable {
    let eventLoop: any EventLoop
    let receiver: any ModelResponseReceiver
    private let promise: EventLoopPromise<Void>
    private var done = false
    private var deadlineTimer: Scheduled<Void>?
    /// The connection's handler while the request runs on it.
    fileprivate var handler: ModelConnectionHandler?
    /// Whether the request waits for ``release(first:)`` before it is written.
    private var held: Bool
    /// What writes the request on its connection, while it is held.
    private var write: (() -> Void)?
    /// What starts a held request on the kept connection it took, and what gives that connection
    /// back unused (set before the exchange is shared, then touched only on `eventLoop`).
    private var start: (() -> Void)?
    private var giveBack: (() -> Void)?

    init(eventLoop: any EventLoop, receiver: any ModelResponseReceiver, held: Bool = false) {
        self.eventLoop = eventLoop
        self.receiver = receiver
        self.promise = eventLoop.makePromise()
        self.held = held
    }

    /// Writes a held request now, or as soon as its connection is there, after running `first`
    /// on the event loop (once; from any thread).
    func release(first: (@Sendable () -> Void)? = nil) {
        guard eventLoop.inEventLoop else { return eventLoop.execute { self.release(first: first) } }
        guard held, !done else { return }
        held = false
        first?()
        if let start {
            self.start = nil
            giveBack = nil
            return start()
        }
        let write = self.write
        self.write = nil
        write?()
    }

    /// Holds `start` (which begins the request on the kept connection it took) until the release;
    /// `giveBack` returns that connection to the pool if the exchange ends unreleased. Called
    /// before the exchange is shared.
    fileprivate func startWhenReleased(_ start: @escaping () -> Void, giveBack: @escaping () -> Void) {
        self.start = start
        self.giveBack = giveBack
    }

    /// Runs `write` (which writes the request on the connection it is ready on) now, or on
    /// ``release(first:)`` while the request is held; a later connection's `write` replaces this one.
    fileprivate func whenReleased(_ write: @escaping () -> Void) {
        if held { self.write = write } else { write() }
    }

    /// Succeeds when the response ended and was accepted; fails with the request's failure.
    var futureResult: EventLoopFuture<Void> { promise.futureResult }

    func armDeadline(_ deadline: NIODeadline) {
        deadlineTimer = eventLoop.scheduleTask(deadline: deadline) { [self] in
            fail(reason: ModelHTTPError.deadlineExceeded)
        }
    }

    func fail(reason: any Error) {
        guard eventLoop.inEventLoop else { return eventLoop.execute { self.fail(reason: reason) } }
        guard !done else { return }
        handler?.abandon()
        finish(.failure(reason))
    }

    func cancel() { fail(reason: ModelHTTPError.cancelled) }

    /// Ends the exchange once (on the event loop).
    fileprivate func finish(_ result: Result<Void, any Error>) {
        guard !done else { return }
        done = true
        handler = nil
        write = nil
        start = nil
        if let giveBack {
            self.giveBack = nil
            giveBack()
        }
        deadlineTimer?.cancel()
        deadlineTimer = nil
        if case .failure(let error) = result { receiver.receiveError(error, control: self) }
        promise.completeWith(result)
    }

    fileprivate var isDone: Bool { done }
}

private struct PooledConnection: Sendable {
    var channel: any Channel
    var handler: ModelConnectionHandler
    var since: NIODeadline
}

private struct ConnectedChannel: Sendable {
    var channel: any Channel
    var handler: ModelConnectionHandler
}

/// The last handler of a model connection: writes a request, hands its response to the
/// exchange's receiver, and returns the connection to the pool when the response ended cleanly.
/// Used only on its channel's event loop.
private final class ModelConnectionHandler: ChannelInboundHandler, RemovableChannelHandler, @unchecked Sendable {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    private let origin: ModelOrigin
    private let client: ModelHTTP1Client
    private var context: ChannelHandlerContext?
    private var exchange: ModelExchange?
    /// Whether a byte of the current response arrived (a stale reused connection is replaced only before).
    private var heard = false
    private var keepAlive = true
    /// Called instead of failing the exchange when a reused connection turns out closed.
    private var onStale: (@Sendable (any Error) -> Void)?
    private var idleTimer: Scheduled<Void>?
    /// Whether the current exchange's request was written (a held one is not until released).
    private var wrote = false

    init(origin: ModelOrigin, client: ModelHTTP1Client) {
        self.origin = origin
        self.client = client
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    /// Starts `exchange` on this connection: head and body in one flush, at once or (a held
    /// request) when the exchange is released.
    func begin(_ exchange: ModelExchange, head: HTTPRequestHead, body: ByteBuffer, onStale: (@Sendable (any Error) -> Void)?) {
        idleTimer?.cancel()
        idleTimer = nil
        guard !exchange.isDone else {
            // Failed (its deadline, a cancellation) while the connection was being made: nothing
            // of it was written here, so the connection goes to the pool as it is.
            if let context, context.channel.isActive { client.release(self, channel: context.channel, origin: origin) } else { context?.close(promise: nil) }
            return
        }
        guard let context, context.channel.isActive else {
            if let onStale { return onStale(ModelHTTPError.connectionClosed) }
            return exchange.finish(.failure(ModelHTTPError.connectionClosed))
        }
        self.exchange = exchange
        self.onStale = onStale
        heard = false
        keepAlive = true
        wrote = false
        exchange.handler = self
        exchange.whenReleased { [self] in
            guard let context = self.context, self.exchange === exchange else { return }
            wrote = true
            context.write(wrapOutboundOut(.head(head)), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
            let written = context.eventLoop.makePromise(of: Void.self)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: written)
            written.futureResult.whenFailure { [weak self] error in self?.connectionFailed(error) }
        }
    }

    /// Closes the connection after `deadline` unless a request begins first.
    func idleUntil(_ deadline: NIODeadline, close: @escaping @Sendable () -> Void) {
        guard let context else { return }
        idleTimer?.cancel()
        idleTimer = context.eventLoop.scheduleTask(deadline: deadline) { [weak self] in
            guard let self, self.exchange == nil else { return }
            close()
        }
    }

    /// The exchange gave up mid-answer: the rest of its response cannot be told from the next's.
    /// One given up before its request was written (held, never released) leaves the connection
    /// as it found it, back in the pool.
    func abandon() {
        _ = detach()
        guard let context else { return }
        if !wrote, context.channel.isActive {
            client.release(self, channel: context.channel, origin: origin)
        } else {
            context.close(promise: nil)
        }
    }

    /// Lets go of the current exchange, which reads this connection no more.
    private func detach() -> ModelExchange? {
        let current = exchange
        exchange = nil
        onStale = nil
        current?.handler = nil
        return current
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let exchange else { return }
        heard = true
        switch unwrapInboundIn(data) {
        case .head(let head):
            keepAlive = head.isKeepAlive
            exchange.receiver.receiveHead(head, control: exchange)
        case .body(let buffer):
            exchange.receiver.receiveBody(buffer, control: exchange)
        case .end:
            _ = detach()
            let result = Result { try exchange.receiver.receiveEnd(control: exchange) }
            if keepAlive, context.channel.isActive {
                client.release(self, channel: context.channel, origin: origin)
            } else {
                context.close(promise: nil)
            }
            exchange.finish(result)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        idleTimer?.cancel()
        idleTimer = nil
        connectionFailed(ModelHTTPError.connectionClosed)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        connectionFailed(error)
        context.close(promise: nil)
    }

    /// What a failure of the connection is, named without its details.
    static func classify(_ error: any Error) -> ModelHTTPError {
        if let known = error as? ModelHTTPError { return known }
        if error is NIOSSLError || error is BoringSSLError { return .tlsFailed }
        if error is HTTPParserError { return .malformedResponse }
        return .connectionClosed
    }

    /// The connection failed under the current exchange. A closed connection on a reused
    /// connection, before any byte of the response, is retried on a fresh one (`onStale`).
    private func connectionFailed(_ error: any Error) {
        let failure = Self.classify(error)
        let retry = heard || failure != .connectionClosed ? nil : onStale
        guard let exchange = detach() else { return }
        context?.close(promise: nil)
        if let retry { return retry(failure) }
        exchange.finish(.failure(failure))
    }
}
