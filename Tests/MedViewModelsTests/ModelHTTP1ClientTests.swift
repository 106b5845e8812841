import Crypto
import Foundation
import MedViewCore
import MedViewModels
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import SwiftASN1
import Synchronization
import MedViewTestSupport
import Testing
import X509

/// The lean HTTP/1.1 client model calls go through by default: connections kept alive and reused,
/// a connection the provider closed meanwhile replaced without an error, `Connection: close`
/// honoured, TLS verified, bounded idle connections, and typed errors.
@Suite(.timeLimit(.minutes(1))) struct ModelHTTP1ClientTests {
    static let answer = OpenAICompatibleModelTests.chunk(content: "", role: true) + OpenAICompatibleModelTests.chunk(content: "Sip water ")
        + OpenAICompatibleModelTests.chunk(content: "slowly.") + OpenAICompatibleModelTests.chunk(content: nil, finish: "stop") + OpenAICompatibleModelTests.done

    func model(_ base: String, _ client: ModelHTTP1Client, timeouts: ModelTimeouts = fastTimeouts, retry: RetryPolicy = .none) -> OpenAICompatibleModel {
        OpenAICompatibleModel(configuration: .init(baseURL: base + "/v1", model: "m", timeouts: timeouts, retry: retry), client: .lean(client), sleep: { _ in })
    }

    @Test func answersInTurnReuseOneConnection() async throws {
        try await KeepAliveServer.with(.init(body: Self.answer)) { server in
            let client = ModelHTTP1Client()
            defer { client.closeIdleConnections() }
            let model = model(server.baseURL, client)
            for _ in 0..<5 {
                let result = await collect(model.stream(sampleRequest))
                #expect(result.error == nil)
                #expect(result.text == "Sip water slowly.")
            }
            #expect(server.requests == 5)
            #expect(server.connections == 1)
            #expect(client.idleConnections == 1)
            // The request carried its host and length, as HTTP/1.1 requires.
            let head = try #require(server.lastHead)
            #expect(head.headers["host"].first == "127.0.0.1:\(server.port)")
            #expect(head.headers["content-length"].first == String(server.lastBodyCount))
            #expect(head.uri == "/v1/chat/completions")
        }
    }

    @Test func aKeptConnectionTheProviderDroppedIsReplacedWithoutAnError() async throws {
        // The provider closes each connection when the next request arrives on it, without a
        // response: the client sees its reused connection close before a byte of the answer.
        try await KeepAliveServer.with(.init(body: Self.answer, dropFromRequest: 2)) { server in
            let client = ModelHTTP1Client()
            defer { client.closeIdleConnections() }
            let model = model(server.baseURL, client)
            for _ in 0..<3 {
                let result = await collect(model.stream(sampleRequest))
                #expect(result.error == nil)
                #expect(result.text == "Sip water slowly.")
            }
            // Each later answer: one dropped attempt on the kept connection, one fresh connection.
            #expect(server.connections == 3)
            #expect(server.requests == 5)
        }
    }

    /// What the engine does while a patient's message is stored: the call is made ready (its
    /// connection taken), and not a byte of it leaves until it is sent.
    @Test("a prepared call takes its connection at once and writes nothing until sent; its answer, arrived before anyone reads it, is held for the reader in order")
    func aPreparedCallWaitsToBeSent() async throws {
        try await KeepAliveServer.with(.init(body: Self.answer)) { server in
            let client = ModelHTTP1Client()
            defer { client.closeIdleConnections() }
            let model = model(server.baseURL, client)
            let call = try #require(await model.prepare(sampleRequest))
            #expect(await waitUntil { server.connections == 1 })
            try await Task.sleep(for: .milliseconds(200))
            #expect(server.requests == 0)

            call.send()
            #expect(await waitUntil { server.requests == 1 })
            try await Task.sleep(for: .milliseconds(100))
            let text = Mutex("")
            try await call.answer { event in
                if case .delta(let piece) = event { text.withLock { $0 += piece } }
                return true
            }
            #expect(text.withLock { $0 } == "Sip water slowly.")
            #expect(server.requests == 1)
            #expect(client.idleConnections == 1)
        }
    }

    /// A message that was not stored (a duplicate, a failed write) never reaches the provider.
    @Test("a prepared call discarded unsent writes nothing and leaves its connection to the pool, where the next call finds it")
    func aDiscardedCallLeavesItsConnectionUnused() async throws {
        try await KeepAliveServer.with(.init(body: Self.answer)) { server in
            let client = ModelHTTP1Client()
            defer { client.closeIdleConnections() }
            let model = model(server.baseURL, client)
            // A fresh connection (being made as the call is discarded), then a pooled one.
            for _ in 0..<2 {
                let call = try #require(await model.prepare(sampleRequest))
                call.discard()
                #expect(await waitUntil { client.idleConnections == 1 })
            }
            #expect(server.requests == 0)
            #expect(await collect(model.stream(sampleRequest)).text == "Sip water slowly.")
            #expect(server.connections == 1)
            #expect(server.requests == 1)
        }
    }

    @Test func connectionCloseIsHonoured() async throws {
        try await KeepAliveServer.with(.init(body: Self.answer, keepAlive: false)) { server in
            let client = ModelHTTP1Client()
            let model = model(server.baseURL, client)
            for _ in 0..<3 {
                #expect(await collect(model.stream(sampleRequest)).text == "Sip water slowly.")
            }
            #expect(server.connections == 3)
            #expect(client.idleConnections == 0)
        }
    }

    @Test func idleConnectionsAreBounded() async throws {
        try await KeepAliveServer.with(.init(body: Self.answer, delayBeforeHead: .milliseconds(200))) { server in
            let client = ModelHTTP1Client(configuration: .init(maxIdleConnectionsPerOrigin: 2))
            let model = model(server.baseURL, client)
            // Four answers at once need four connections; only two are kept when they end.
            await withTaskGroup(of: Void.self) { group in
                for _ in 0..<4 { group.addTask { _ = await collect(model.stream(sampleRequest)) } }
            }
            #expect(server.connections == 4)
            #expect(client.idleConnections == 2)
            #expect(await server.waitForClosed(2))
            client.closeIdleConnections()
            #expect(await server.waitForClosed(4))
        }
    }

    @Test func aConnectionUnusedTooLongIsClosed() async throws {
        try await KeepAliveServer.with(.init(body: Self.answer)) { server in
            let client = ModelHTTP1Client(configuration: .init(idleConnectionTimeout: .milliseconds(300)))
            #expect(await collect(model(server.baseURL, client).stream(sampleRequest)).text == "Sip water slowly.")
            #expect(await server.waitForClosed(1))
            #expect(client.idleConnections == 0)
        }
    }

    @Test func aCancelledAnswerIsNotKeptForTheNextRequest() async throws {
        try await KeepAliveServer.with(.init(body: Self.answer, holdAfterFirstPiece: true)) { server in
            let client = ModelHTTP1Client()
            let model = model(server.baseURL, client, timeouts: .init(response: .seconds(10), idle: .seconds(10), total: .seconds(20)))
            let consumer = Task {
                for try await event in model.stream(sampleRequest) {
                    if case .delta = event { withUnsafeCurrentTask { $0?.cancel() } }
                }
            }
            _ = await consumer.result
            #expect(await server.waitForClosed(1))
            #expect(client.idleConnections == 0)
        }
    }

    @Test func theTotalDeadlineEndsAnAnswerThatNeverEnds() async throws {
        try await KeepAliveServer.with(.init(body: Self.answer, holdAfterFirstPiece: true)) { server in
            let client = ModelHTTP1Client()
            let started = ContinuousClock.now
            let result = await collect(model(server.baseURL, client, timeouts: .init(response: .seconds(10), idle: .seconds(10), total: .milliseconds(500))).stream(sampleRequest))
            let error = try #require(result.modelError)
            #expect(error.kind == .unavailable)
            #expect(error.retryable)
            #expect(error.detail.contains("timed out"))
            #expect(ContinuousClock.now - started < .seconds(8))
            #expect(await server.waitForClosed(1))
        }
    }

    @Test func badURLsRefusedConnectionsAndBadResponsesAreTypedErrors() async throws {
        let client = ModelHTTP1Client()
        let notHTTP = await collect(model("ftp://127.0.0.1:1", client).stream(sampleRequest))
        #expect(notHTTP.modelError?.kind == .invalidRequest)
        let withUser = await collect(model("http://user:secret@127.0.0.1:1", client).stream(sampleRequest))
        #expect(withUser.modelError?.kind == .invalidRequest)
        #expect(withUser.modelError?.detail.contains("secret") == false)

        let refused = await withRefusingLoopbackPort { port in await collect(model("http://127.0.0.1:\(port)", client).stream(sampleRequest)) }
        #expect(refused.modelError?.kind == .unavailable)
        #expect(refused.modelError?.retryable == true)
        #expect(refused.modelError?.detail.contains("could not connect") == true)

        try await KeepAliveServer.with(.init(body: Self.answer, garbage: true)) { server in
            let result = await collect(model(server.baseURL, client).stream(sampleRequest))
            #expect(result.modelError?.kind == .unavailable)
            #expect(result.modelError?.detail.contains("not valid HTTP") == true)
        }
    }

    @Test(arguments: ["lean", "asynchttpclient"]) func bothClientsGiveTheSameAnswersAndErrors(_ name: String) async throws {
        let client = try #require(ModelHTTP.named(name))
        let silent = LoopbackHTTPServer.Reply(steps: [.send(OpenAICompatibleModelTests.chunk(content: "Sip ")), .hold])
        try await LoopbackHTTPServer.with([.events(Self.answer), .error(429, #"{"error":{"type":"rate_limit_error"}}"#), silent]) { server in
            let timeouts = ModelTimeouts(response: .seconds(10), idle: .milliseconds(300), total: .seconds(20))
            let model = OpenAICompatibleModel(configuration: .init(baseURL: server.baseURL + "/v1", model: "m", timeouts: timeouts, retry: .none), client: client, sleep: { _ in })
            #expect(model.httpClientName == name)
            #expect(await collect(model.stream(sampleRequest)).text == "Sip water slowly.")
            #expect(await collect(model.stream(sampleRequest)).modelError?.kind == .throttled)
            let silence = await collect(model.stream(sampleRequest))
            #expect(silence.text == "Sip ")
            #expect(silence.modelError?.detail.contains("silent") == true)
        }
    }

    @Test func tlsIsVerifiedAndItsConnectionsReused() async throws {
        let identity = try TestIdentity.localhost()
        try await KeepAliveServer.with(.init(body: Self.answer), tls: identity.serverContext()) { server in
            var trusting = TLSConfiguration.makeClientConfiguration()
            trusting.trustRoots = .certificates([identity.certificate])
            let client = ModelHTTP1Client(configuration: .init(tls: trusting))
            defer { client.closeIdleConnections() }
            let model = model("https://localhost:\(server.port)", client)
            for _ in 0..<3 {
                let result = await collect(model.stream(sampleRequest))
                #expect(result.error == nil)
                #expect(result.text == "Sip water slowly.")
            }
            #expect(server.connections == 1)

            // The system's roots do not know this certificate: the handshake fails, typed.
            let untrusting = ModelHTTP1Client()
            let refused = await collect(self.model("https://localhost:\(server.port)", untrusting).stream(sampleRequest))
            #expect(refused.modelError?.kind == .unavailable)
            #expect(refused.modelError?.detail.contains("TLS") == true)
            #expect(refused.text.isEmpty)
        }
    }
}

/// A self-signed certificate for `localhost` and its key, made for one test run.
struct TestIdentity {
    var certificate: NIOSSLCertificate
    var key: NIOSSLPrivateKey

    static func localhost() throws -> TestIdentity {
        let key = P256.Signing.PrivateKey()
        let name = try DistinguishedName { CommonName("localhost") }
        let certificate = try Certificate(
            version: .v3, serialNumber: .init(), publicKey: .init(key.publicKey),
            notValidBefore: Date() - 3600, notValidAfter: Date() + 3600, issuer: name, subject: name,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: nil))
                KeyUsage(digitalSignature: true, keyCertSign: true)
                SubjectAlternativeNames([.dnsName("localhost")])
            },
            issuerPrivateKey: .init(key)
        )
        var serializer = DER.Serializer()
        try serializer.serialize(certificate)
        return TestIdentity(
            certificate: try NIOSSLCertificate(bytes: serializer.serializedBytes, format: .der),
            key: try NIOSSLPrivateKey(bytes: Array(key.pemRepresentation.utf8), format: .pem)
        )
    }

    func serverContext() throws -> NIOSSLContext {
        try NIOSSLContext(configuration: .makeServerConfiguration(certificateChain: [.certificate(certificate)], privateKey: .privateKey(key)))
    }
}

/// An HTTP/1.1 server on loopback that keeps connections alive (unless told not to) and counts
/// connections and requests; it answers every POST with the same body.
final class KeepAliveServer: Sendable {
    struct Behaviour: Sendable {
        var body: String
        var keepAlive = true
        /// From this request on a connection, the connection is closed instead of answered.
        var dropFromRequest: Int?
        var delayBeforeHead: Duration = .zero
        /// Sends the head and the body's first piece, then nothing more.
        var holdAfterFirstPiece = false
        /// Answers with bytes that are not HTTP.
        var garbage = false
    }

    private struct State {
        var connections = 0
        var closed = 0
        var requests = 0
        var lastHead: HTTPRequestHead?
        var lastBodyCount = 0
    }

    let port: Int
    private let state = Mutex(State())
    var baseURL: String { "http://127.0.0.1:\(port)" }
    var connections: Int { state.withLock { $0.connections } }
    var requests: Int { state.withLock { $0.requests } }
    var lastHead: HTTPRequestHead? { state.withLock { $0.lastHead } }
    var lastBodyCount: Int { state.withLock { $0.lastBodyCount } }

    private init(port: Int) { self.port = port }

    /// Waits up to 5 s until `count` connections have closed.
    func waitForClosed(_ count: Int) async -> Bool {
        let deadline = ContinuousClock.now + .seconds(5)
        while ContinuousClock.now < deadline {
            if state.withLock({ $0.closed }) >= count { return true }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return false
    }

    static func with(_ behaviour: Behaviour, tls: NIOSSLContext? = nil, _ body: (KeepAliveServer) async throws -> Void) async throws {
        let box = Mutex<KeepAliveServer?>(nil)
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { child in
                child.eventLoop.makeCompletedFuture {
                    let server = box.withLock { $0 }!
                    if let tls { try child.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls)) }
                    if behaviour.garbage { return try child.pipeline.syncOperations.addHandler(GarbageHandler()) }
                    try child.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: false)
                    try child.pipeline.syncOperations.addHandler(Handler(server: server, behaviour: behaviour))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let server = KeepAliveServer(port: channel.localAddress!.port!)
        box.withLock { $0 = server }
        do {
            try await body(server)
        } catch {
            try? await channel.close()
            throw error
        }
        try? await channel.close()
    }

    /// Answers whatever arrives with bytes that are not HTTP.
    private final class GarbageHandler: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: "this is not HTTP at all\r\n\r\n")), promise: nil)
        }
    }

    private final class Handler: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let server: KeepAliveServer
        let behaviour: Behaviour
        var onThisConnection = 0
        var bodyCount = 0
        var head: HTTPRequestHead?

        init(server: KeepAliveServer, behaviour: Behaviour) {
            self.server = server
            self.behaviour = behaviour
        }

        func channelActive(context: ChannelHandlerContext) {
            server.state.withLock { $0.connections += 1 }
            context.fireChannelActive()
        }

        func channelInactive(context: ChannelHandlerContext) {
            server.state.withLock { $0.closed += 1 }
            context.fireChannelInactive()
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            context.close(promise: nil)
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head):
                self.head = head
                bodyCount = 0
            case .body(let buffer):
                bodyCount += buffer.readableBytes
            case .end:
                onThisConnection += 1
                let (head, count) = (self.head, bodyCount)
                server.state.withLock {
                    $0.requests += 1
                    $0.lastHead = head
                    $0.lastBodyCount = count
                }
                if let drop = behaviour.dropFromRequest, onThisConnection >= drop {
                    context.close(promise: nil)
                    return
                }
                let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
                if behaviour.delayBeforeHead > .zero {
                    context.eventLoop.scheduleTask(in: .milliseconds(Int64(behaviour.delayBeforeHead / .milliseconds(1)))) {
                        loopBound.value.0.respond(context: loopBound.value.1)
                    }
                } else {
                    respond(context: context)
                }
            }
        }

        func respond(context: ChannelHandlerContext) {
            let body = ByteBuffer(string: behaviour.body)
            var headers = HTTPHeaders([("content-type", "text/event-stream")])
            headers.add(name: "connection", value: behaviour.keepAlive ? "keep-alive" : "close")
            if behaviour.holdAfterFirstPiece {
                headers.add(name: "transfer-encoding", value: "chunked")
            } else {
                headers.add(name: "content-length", value: String(body.readableBytes))
            }
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))), promise: nil)
            if behaviour.holdAfterFirstPiece {
                context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: OpenAICompatibleModelTests.chunk(content: "Sip "))))), promise: nil)
                return
            }
            context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
            let channel = context.channel
            let keepAlive = behaviour.keepAlive
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
                if !keepAlive { channel.close(promise: nil) }
            }
        }
    }
}

/// Waits up to 5 s for `condition`.
func waitUntil(_ condition: () -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + .seconds(5)
    while ContinuousClock.now < deadline {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(5))
    }
    return condition()
}
