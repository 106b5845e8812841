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
import MedViewTestSupport
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

    /// The protocol scenarios every shape runs, on this server.
    var scenarios: ProtocolScenarios {
        ProtocolScenarios(connect: { try await connect($0) }, stored: { conversation, user in
            try await chat.store.messages(conversationId: conversation, userId: user).map { ($0.status.rawValue, $0.text) }
        })
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

func json(_ response: LiveResponse) -> [String: Any] {
    (try? JSONSerialization.jsonObject(with: Data(response.body.readableBytesView))) as? [String: Any] ?? [:]
}
