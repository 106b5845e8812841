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
import Synchronization

/// A live server on a loopback port with a SQLite store in a temporary directory.
struct LiveServer: Sendable {
    let port: Int
    let client: any TestClientProtocol
    let issuer: DevTokenIssuer
    let chat: ChatService
    let dataDirectory: String

    var wsURL: String { "ws://127.0.0.1:\(port)/v1/ws" }

    func token(_ user: String, lifetime: Duration = .seconds(600)) async throws -> String {
        try await issuer.token(userId: user, lifetime: lifetime)
    }

    /// Runs an HTTP request with a bearer token for `user`.
    func request(_ uri: String, _ method: HTTPRequest.Method = .get, user: String?, headers: HTTPFields = [:], body: String? = nil) async throws -> TestResponse {
        var headers = headers
        if let user { headers[.authorization] = "Bearer \(try await token(user))" }
        return try await client.execute(uri: uri, method: method, headers: headers, body: body.map { ByteBuffer(string: $0) })
    }

    /// Connects a WebSocket client as `user`.
    func connect(_ user: String) async throws -> WSTestClient {
        try await WSTestClient.connect(url: wsURL, headers: [.authorization: "Bearer \(try await token(user))"])
    }

    /// Starts a server, runs `body`, and always shuts the server and store down.
    static func with<T: Sendable>(
        dataDirectory: String? = nil,
        model: any ChatModel = ScriptedModel(configuration: .init(deltaDelay: .milliseconds(1))),
        configure: (inout ServerConfiguration) -> Void = { _ in },
        _ body: @Sendable (LiveServer) async throws -> T
    ) async throws -> T {
        let directory = dataDirectory ?? (NSTemporaryDirectory() + "medview-test-" + UUID().uuidString)
        defer { if dataDirectory == nil { try? FileManager.default.removeItem(atPath: directory) } }
        var configuration = ServerConfiguration(host: "127.0.0.1", port: 0, dataDirectory: directory)
        configure(&configuration)
        var logger = Logger(label: "test")
        logger.logLevel = .error
        let store = try await SQLiteConversationStore.open(path: ServerRuntime.databasePath(dataDirectory: directory), logger: logger)
        do {
            let issuer = try await DevTokenIssuer.load(dataDirectory: directory)
            let metrics = ServerMetrics()
            let chat = ChatService(model: model, store: store, configuration: configuration.chat, logger: logger, observer: metrics)
            let app = buildApplication(configuration: configuration, dependencies: AppDependencies(chat: chat, verifier: issuer, metrics: metrics, logger: logger))
            let result = try await app.test(.live) { client in
                let server = LiveServer(port: client.port!, client: client, issuer: issuer, chat: chat, dataDirectory: directory)
                return try await body(server)
            }
            await chat.drain(gracePeriod: .seconds(5))
            try await store.close()
            return result
        } catch {
            try? await store.close()
            throw error
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

func json(_ response: TestResponse) -> [String: Any] {
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
