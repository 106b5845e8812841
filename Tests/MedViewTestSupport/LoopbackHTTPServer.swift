import Foundation
#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// The one loopback HTTP/1.1 server of the test suites: it stands in for model APIs, credential
/// endpoints and anything else a test needs to answer over HTTP on 127.0.0.1.
///
/// Each request gets a ``Reply`` — the next of a script (the last one repeats), or one computed
/// from the request by a closure: a status, headers and body steps
/// written as they come (text pieces, pauses, holding the connection open, cutting it). The
/// server records every request and notices when the client closes a connection it was still
/// serving, so tests can assert that a cancelled or timed-out request really closed its connection.
public final class LoopbackHTTPServer: Sendable {
    /// One step of a response body.
    public enum Step: Sendable {
        /// Writes these bytes (UTF-8) as one piece and flushes.
        case send(String)
        /// Writes these bytes as one piece (pieces may split multi-byte characters).
        case raw([UInt8])
        /// Waits before the next step.
        case pause(Duration)
        /// Keeps the connection open, sending nothing, until the client closes it (at most 30 s).
        case hold
        /// Closes the connection without ending the body (a truncated response).
        case cut
    }

    /// The answer to one request.
    public struct Reply: Sendable {
        public var status: Int
        public var headers: [(String, String)]
        /// Waits this long before sending the response head.
        public var delayBeforeHead: Duration
        public var steps: [Step]

        public init(status: Int = 200, headers: [(String, String)] = [("content-type", "text/event-stream")], delayBeforeHead: Duration = .zero, steps: [Step] = []) {
            self.status = status
            self.headers = headers
            self.delayBeforeHead = delayBeforeHead
            self.steps = steps
        }

        /// A plain-text reply (`status`, then `body` in one piece).
        public init(_ status: Int, _ body: String = "") {
            self.init(status: status, headers: [("content-type", "text/plain")], steps: body.isEmpty ? [] : [.send(body)])
        }

        /// A complete SSE reply whose body is `body`, cut into pieces of `piece` bytes (0 = one piece).
        public static func events(_ body: String, piece: Int = 0) -> Reply {
            guard piece > 0 else { return Reply(steps: [.send(body)]) }
            let bytes = Array(body.utf8)
            let steps = stride(from: 0, to: bytes.count, by: piece).map { Step.raw(Array(bytes[$0..<min($0 + piece, bytes.count)])) }
            return Reply(steps: steps)
        }

        /// A JSON error reply.
        public static func error(_ status: Int, _ json: String, headers: [(String, String)] = []) -> Reply {
            Reply(status: status, headers: [("content-type", "application/json")] + headers, steps: [.send(json)])
        }
    }

    /// What the server received.
    public struct Request: Sendable {
        public var method: String
        public var uri: String
        public var headers: [(String, String)]
        public var body: [UInt8]
        /// The trailers of a chunked body (empty when it had none).
        public var trailers: [(String, String)] = []

        /// The path, without the query.
        public var path: String { String(uri.prefix { $0 != "?" }) }

        /// The body as UTF-8 text.
        public var text: String { String(decoding: body, as: UTF8.self) }

        /// The first value of header `name` (any case).
        public func header(_ name: String) -> String? {
            headers.first { $0.0.lowercased() == name.lowercased() }?.1
        }

        /// The body as a JSON object, if it is one.
        public var json: [String: Any]? {
            (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any]
        }
    }

    private struct State {
        public var requests: [Request] = []
        public var clientClosures: [ContinuousClock.Instant] = []
    }

    public let port: Int
    /// The reply to a request, given how many requests came before it.
    private let respond: @Sendable (Request, Int) -> Reply
    private let state = Mutex(State())
    private let channel: NIOAsyncChannel<NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>, Never>

    private init(respond: @escaping @Sendable (Request, Int) -> Reply, channel: NIOAsyncChannel<NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>, Never>) {
        self.respond = respond
        self.channel = channel
        self.port = channel.channel.localAddress?.port ?? 0
    }

    /// The base URL, `http://127.0.0.1:PORT`.
    public var baseURL: String { "http://127.0.0.1:\(port)" }

    /// Requests received so far.
    public var requests: [Request] { state.withLock { $0.requests } }

    /// When the client closed connections the server was still serving (mid-body or while holding).
    public var clientClosures: [ContinuousClock.Instant] { state.withLock { $0.clientClosures } }

    /// Waits up to `timeout` for the client to have closed `count` connections; returns whether it did.
    public func waitForClientClosures(_ count: Int = 1, timeout: Duration = .seconds(5)) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if clientClosures.count >= count { return true }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return clientClosures.count >= count
    }

    /// Starts a server answering with `replies` in turn (the last one repeats; none scripted
    /// answers 500), runs `body`, and always shuts the server down.
    public static func with<T: Sendable>(_ replies: [Reply], _ body: (LoopbackHTTPServer) async throws -> T) async throws -> T {
        try await with(respond: { _, index in replies.isEmpty ? Reply(500, "no reply scripted") : replies[min(index, replies.count - 1)] }, body)
    }

    /// Starts a server answering each request with `respond(request)`, runs `body`, and always
    /// shuts the server down.
    public static func with<T: Sendable>(respond: @escaping @Sendable (Request) -> Reply, _ body: (LoopbackHTTPServer) async throws -> T) async throws -> T {
        try await with(respond: { request, _ in respond(request) }, body)
    }

    private static func with<T: Sendable>(respond: @escaping @Sendable (Request, Int) -> Reply, _ body: (LoopbackHTTPServer) async throws -> T) async throws -> T {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: "127.0.0.1", port: 0) { child in
                child.eventLoop.makeCompletedFuture {
                    try child.pipeline.syncOperations.configureHTTPServerPipeline()
                    return try NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>(wrappingChannelSynchronously: child)
                }
            }
        let server = LoopbackHTTPServer(respond: respond, channel: channel)
        // The accept loop is not cancelled: it ends when the server channel closes, after taking
        // every connection accepted before that. (Cancelled, it would drop connections accepted
        // as the test ended, say by a client whose connect was still under way, and NIO stops the
        // process when such a connection is dropped unfinished.)
        let accepting = Task { await server.acceptLoop() }
        do {
            let result = try await body(server)
            try? await channel.channel.close()
            await accepting.value
            return result
        } catch {
            try? await channel.channel.close()
            await accepting.value
            throw error
        }
    }

    /// Serves each connection until the server channel closes, then ends the ones still served.
    private func acceptLoop() async {
        await withDiscardingTaskGroup { group in
            do {
                try await channel.executeThenClose { inbound in
                    for try await connection in inbound {
                        group.addTask { await self.serve(connection) }
                    }
                }
            } catch {
                // The server channel closed: the test is over.
            }
            group.cancelAll()
        }
    }

    private func serve(_ connection: NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>) async {
        let raw = connection.channel
        await withTaskCancellationHandler {
            do {
                try await connection.executeThenClose { inbound, outbound in
                    var head: HTTPRequestHead?
                    var body: [UInt8] = []
                    var trailers: [(String, String)] = []
                    reading: for try await part in inbound {
                        switch part {
                        case .head(let h): head = h
                        case .body(let buffer): body.append(contentsOf: buffer.readableBytesView)
                        case .end(let t):
                            trailers = t.map { $0.map { ($0.name, $0.value) } } ?? []
                            break reading
                        }
                    }
                    guard let head else { return }
                    var request = Request(method: head.method.rawValue, uri: head.uri, headers: head.headers.map { ($0.name, $0.value) }, body: body)
                    request.trailers = trailers
                    let index = state.withLock { state -> Int in
                        state.requests.append(request)
                        return state.requests.count - 1
                    }
                    let reply = respond(request, index)
                    if reply.delayBeforeHead > .zero {
                        if await clientCloses(raw, within: reply.delayBeforeHead) { return }
                    }
                    var headers = HTTPHeaders(reply.headers)
                    headers.add(name: "connection", value: "close")
                    do {
                        try await outbound.write(.head(HTTPResponseHead(version: .http1_1, status: .init(statusCode: reply.status), headers: headers)))
                        for step in reply.steps {
                            switch step {
                            case .send(let text):
                                try await outbound.write(.body(.byteBuffer(ByteBuffer(string: text))))
                            case .raw(let bytes):
                                try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: bytes))))
                            case .pause(let duration):
                                if await clientCloses(raw, within: duration) { return }
                            case .hold:
                                _ = await clientCloses(raw, within: .seconds(30))
                                return
                            case .cut:
                                return
                            }
                        }
                        try await outbound.write(.end(nil))
                    } catch {
                        recordClosure()
                    }
                }
            } catch {
                // The connection failed; the test asserts on what the client saw.
            }
        } onCancel: {
            raw.close(promise: nil)
        }
    }

    /// Waits up to `duration` for the client to close the connection; records and returns `true` if it did.
    private func clientCloses(_ channel: any Channel, within duration: Duration) async -> Bool {
        let outcome: Bool = await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                try? await Task.sleep(for: duration)
                return false
            }
            group.addTask {
                // Polls: a future's wait cannot be cancelled, a sleep can.
                while channel.isActive {
                    do { try await Task.sleep(for: .milliseconds(5)) } catch { return false }
                }
                return true
            }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
        if outcome { recordClosure() }
        return outcome
    }

    private func recordClosure() {
        state.withLock { $0.clientClosures.append(.now) }
    }
}

/// Runs `body` with a loopback port where a connection is refused: the port stays bound (so no
/// other test's server can take it meanwhile) but nothing listens on it.
public func withRefusingLoopbackPort<T>(_ body: (Int) async throws -> T) async rethrows -> T {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
    _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
    return try await body(Int(UInt16(bigEndian: address.sin_port)))
}
