import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import HummingbirdWSClient
import Logging
import MedViewCore
import MedViewModels
import MedViewProtocol
import MedViewServer
import MedViewStore
import NIOCore
import NIOWebSocket
import ServiceLifecycle
import Synchronization

/// A response read by ``LiveClient``.
struct LiveResponse: Sendable {
    let head: HTTPResponse
    let body: ByteBuffer
    var status: HTTPResponse.Status { head.status }
    var headers: HTTPFields { head.headerFields }
}

/// An HTTP/1.1 client on one keep-alive connection to a live server.
struct LiveClient: Sendable {
    let client: TestClient

    func execute(uri: String, method: HTTPRequest.Method, headers: HTTPFields = [:], body: ByteBuffer? = nil) async throws -> LiveResponse {
        var headers = headers
        headers[.connection] = "keep-alive"
        let response = try await client.execute(TestClient.Request(uri, method: method, authority: "localhost", headers: headers, body: body))
        return LiveResponse(head: response.head, body: response.body ?? ByteBuffer())
    }
}

/// A live server on a loopback port with a SQLite store in a temporary directory: the very
/// application `medview serve` runs (``buildApplication(configuration:dependencies:onServerRunning:)``),
/// stopped at the end the way SIGTERM stops it.
struct LiveServer: Sendable {
    let port: Int
    let client: LiveClient
    let issuer: DevTokenIssuer
    let chat: ChatService
    let dataDirectory: String
    /// Stops the application as SIGTERM does (drain, server, store), and returns when it has stopped.
    let shutdown: @Sendable () async throws -> Void

    var wsURL: String { "ws://127.0.0.1:\(port)/v1/ws" }

    func token(_ user: String, lifetime: Duration = .seconds(600)) async throws -> String {
        try await issuer.token(userId: user, lifetime: lifetime)
    }

    /// Runs an HTTP request with a bearer token for `user`.
    func request(_ uri: String, _ method: HTTPRequest.Method = .get, user: String?, headers: HTTPFields = [:], body: String? = nil) async throws -> LiveResponse {
        var headers = headers
        if let user { headers[.authorization] = "Bearer \(try await token(user))" }
        return try await client.execute(uri: uri, method: method, headers: headers, body: body.map { ByteBuffer(string: $0) })
    }

    /// Connects a WebSocket client as `user`.
    func connect(_ user: String) async throws -> WSTestClient {
        try await WSTestClient.connect(url: wsURL, headers: [.authorization: "Bearer \(try await token(user))"])
    }

    /// Starts the application, runs `body`, and always shuts it down gracefully (the store is
    /// closed last). `store` replaces the SQLite store (it is closed all the same).
    static func with<T: Sendable>(
        dataDirectory: String? = nil,
        model: any ChatModel = ScriptedModel(configuration: .init(deltaDelay: .milliseconds(1))),
        store: (any ConversationStore)? = nil,
        configure: (inout ServerConfiguration) -> Void = { _ in },
        announce: @escaping @Sendable (String) -> Void = { _ in },
        _ body: @Sendable (LiveServer) async throws -> T
    ) async throws -> T {
        let directory = dataDirectory ?? (NSTemporaryDirectory() + "medview-test-" + UUID().uuidString)
        defer { if dataDirectory == nil { try? FileManager.default.removeItem(atPath: directory) } }
        var configuration = ServerConfiguration(host: "127.0.0.1", port: 0, dataDirectory: directory)
        configuration.limits.shutdownGracePeriod = .seconds(5)
        // The test's HTTP client opens its connection when the server starts and may send its
        // first request much later (after a WebSocket exchange, on a loaded machine): the 10 s
        // header timeout (slow-loris protection, tested on its own) would close it first.
        configuration.http.headerTimeout = .seconds(300)
        configure(&configuration)
        var logger = Logger(label: "test")
        logger.logLevel = .error
        let (ports, portContinuation) = AsyncStream<Int>.makeStream()
        let app = try await buildApplication(configuration: configuration, dependencies: AppDependencies(model: model, store: store, logger: logger, announce: announce)) { port in
            portContinuation.yield(port)
            portContinuation.finish()
        }
        guard let issuer = app.verifier as? DevTokenIssuer else { throw TestTimeout(description: "development mode expected") }
        let group = ServiceGroup(configuration: .init(services: [app], logger: logger))
        return try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            var iterator = ports.makeAsyncIterator()
            guard let port = await iterator.next() else {
                await group.triggerGracefulShutdown()
                try await tasks.waitForAll()
                throw TestTimeout(description: "the server did not start")
            }
            let client = TestClient(host: "127.0.0.1", port: port, configuration: .init(timeout: .seconds(20)))
            client.connect()
            let stopped = Mutex(false)
            let shutdown: @Sendable () async throws -> Void = {
                guard stopped.withLock({ s in defer { s = true }; return !s }) else { return }
                try? await client.shutdown()
                await group.triggerGracefulShutdown()
            }
            let server = LiveServer(port: port, client: LiveClient(client: client), issuer: issuer, chat: app.chat, dataDirectory: directory, shutdown: shutdown)
            do {
                let result = try await body(server)
                try await shutdown()
                try await tasks.waitForAll()
                return result
            } catch {
                try? await shutdown()
                try? await tasks.waitForAll()
                throw error
            }
        }
    }
}

struct TestTimeout: Error, CustomStringConvertible {
    var description: String
}

/// A WebSocket client for tests: send commands or raw frames, read decoded events with a timeout.
final class WSTestClient: Sendable {
    enum Incoming: Sendable {
        case event(ServerEvent)
        case closed(WebSocketCloseFrame?)
    }

    enum Outgoing: Sendable {
        case frame(WebSocketOutboundWriter.OutboundFrame)
        case close
    }

    private let mailbox = Mutex<[Incoming]>([])
    private let outgoing: AsyncStream<Outgoing>.Continuation

    private init(outgoing: AsyncStream<Outgoing>.Continuation) {
        self.outgoing = outgoing
    }

    static func connect(url: String, headers: HTTPFields) async throws -> WSTestClient {
        let (outgoingStream, outCont) = AsyncStream<Outgoing>.makeStream()
        let client = WSTestClient(outgoing: outCont)
        var configuration = WebSocketClientConfiguration()
        configuration.additionalHeaders = headers
        configuration.maxFrameSize = 1 << 21
        var logger = Logger(label: "ws-test-client")
        logger.logLevel = .critical
        Task {
            do {
                let close = try await WebSocketClient.connect(url: url, configuration: configuration, logger: logger) { inbound, outbound, _ in
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        group.addTask {
                            for await item in outgoingStream {
                                switch item {
                                case .frame(let frame): try await outbound.write(frame)
                                case .close:
                                    try await outbound.close(.normalClosure, reason: nil)
                                    return
                                }
                            }
                        }
                        for try await message in inbound.messages(maxSize: 1 << 21) {
                            if case .text(let text) = message, let event = try? ServerEvent.decode(text) {
                                client.mailbox.withLock { $0.append(.event(event)) }
                            }
                        }
                        group.cancelAll()
                    }
                }
                client.mailbox.withLock { $0.append(.closed(close)) }
            } catch {
                client.mailbox.withLock { $0.append(.closed(nil)) }
            }
        }
        return client
    }

    func send(_ command: ClientCommand) {
        outgoing.yield(.frame(.text(String(decoding: command.encoded(), as: UTF8.self))))
    }

    func sendText(_ text: String) {
        outgoing.yield(.frame(.text(text)))
    }

    func sendFrame(_ frame: WebSocketOutboundWriter.OutboundFrame) {
        outgoing.yield(.frame(frame))
    }

    func close() {
        outgoing.yield(.close)
        outgoing.finish()
    }

    /// The next incoming item, or a timeout error.
    func nextItem(timeout: Duration = .seconds(10)) async throws -> Incoming {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while ContinuousClock.now < deadline {
            let item = mailbox.withLock { box -> Incoming? in
                guard let first = box.first else { return nil }
                if case .closed = first { return first }
                box.removeFirst()
                return first
            }
            if let item { return item }
            try await Task.sleep(for: .milliseconds(2))
        }
        throw TestTimeout(description: "no WebSocket event within \(timeout)")
    }

    /// The next event; fails if the connection closed or nothing came in time.
    func next(timeout: Duration = .seconds(10)) async throws -> ServerEvent {
        switch try await nextItem(timeout: timeout) {
        case .event(let e): return e
        case .closed: throw TestTimeout(description: "connection closed while waiting for an event")
        }
    }

    /// Reads events until the terminal event of `streamId` (inclusive).
    func readStream(_ streamId: String, timeout: Duration = .seconds(20)) async throws -> [ServerEvent] {
        var events: [ServerEvent] = []
        while true {
            let e = try await next(timeout: timeout)
            guard e.streamId == streamId, e.seq != nil else { continue }
            events.append(e)
            if e.isTerminal { return events }
        }
    }
}

func chunks(_ events: [ServerEvent]) -> [StreamChunk] {
    events.compactMap { if case .streamChunk(let c) = $0 { c } else { nil } }
}

func ack(_ event: ServerEvent) -> Ack? {
    if case .ack(let a) = event { return a }
    return nil
}

func errorEvent(_ event: ServerEvent) -> ErrorEvent? {
    if case .error(let e) = event { return e }
    return nil
}

func json(_ response: LiveResponse) -> [String: Any] {
    (try? JSONSerialization.jsonObject(with: Data(response.body.readableBytesView))) as? [String: Any] ?? [:]
}

/// Parses an SSE body into events, keeping the `id:` of each.
func parseSSE(_ body: String) -> [(id: String?, event: ServerEvent)] {
    var result: [(String?, ServerEvent)] = []
    for block in body.components(separatedBy: "\n\n") {
        var id: String?
        var data = ""
        for line in block.split(separator: "\n", omittingEmptySubsequences: true) {
            if line.hasPrefix(":") { continue }
            if line.hasPrefix("id: ") { id = String(line.dropFirst(4)) }
            if line.hasPrefix("data: ") { data += line.dropFirst(6) }
        }
        if !data.isEmpty, let event = try? ServerEvent.decode(data) { result.append((id, event)) }
    }
    return result
}
