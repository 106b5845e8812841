import AsyncHTTPClient
import Foundation
import HummingbirdWSClient
import Logging
import MedViewAWS
import MedViewStandIns
import NIOCore
import NIOHTTP1
import NIOWebSocket
import ServiceLifecycle
import Synchronization
import Testing

/// What the test functions saw, for the tests to wait on.
final class EventLog: Sendable {
    private let invocations = Mutex([TestRuntime.Invocation]())

    func append(_ invocation: TestRuntime.Invocation) { invocations.withLock { $0.append(invocation) } }

    /// The first invocation of this event type (CONNECT, MESSAGE, DISCONNECT), waiting up to 10 s.
    func first(_ eventType: String, after count: Int = 0) async throws -> TestRuntime.Invocation {
        for _ in 0..<500 {
            let found = invocations.withLock { $0.filter { $0.requestContext["eventType"] as? String == eventType } }
            if found.count > count { return found[count] }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw Timeout()
    }

    struct Timeout: Error {}
}

/// A one-shot flag a function can wait on.
final class Signal: Sendable {
    private let raised = Mutex(false)
    func raise() { raised.withLock { $0 = true } }
    /// Waits until raised (true) or `timeout` passed (false).
    func wait(timeout: Duration = .seconds(10)) async -> Bool {
        let end = ContinuousClock.now.advanced(by: timeout)
        while ContinuousClock.now < end {
            if raised.withLock({ $0 }) { return true }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return false
    }
}

/// Runs a stand-in, plus `environments` runtime loops of the function `handler` calling `function`
/// for each invocation, for the duration of `body`.
func withStandIn<T: Sendable>(_ configuration: LambdaStandInConfiguration = .init(), environments: Int = 2,
                              function: @escaping @Sendable (TestRuntime.Invocation, TestRuntime) async throws -> Void = { _, _ in },
                              _ body: @escaping @Sendable (LambdaStandIn, EventLog) async throws -> T) async throws -> T {
    var logger = Logger(label: "lambda-standin-test")
    logger.logLevel = .error
    let standIn = LambdaStandIn(configuration: configuration, logger: logger)
    let group = ServiceGroup(configuration: .init(services: [standIn], logger: logger))
    let log = EventLog()
    return try await withThrowingTaskGroup(of: Void.self) { tasks in
        tasks.addTask { try await group.run() }
        await standIn.waitUntilListening()
        let runtime = TestRuntime(address: standIn.runtimeAPI(for: "handler"))
        for _ in 0..<environments {
            tasks.addTask {
                while let invocation = try? await runtime.next() {
                    log.append(invocation)
                    try? await function(invocation, runtime)
                }
            }
        }
        let result: Result<T, any Error>
        do { result = .success(try await body(standIn, log)) } catch { result = .failure(error) }
        await group.triggerGracefulShutdown()
        try? await tasks.waitForAll()
        return try result.get()
    }
}

/// Signed Management API requests, as the function sends them.
struct ManagementClient {
    var endpoint: URL
    var credentials: SigV4Credentials = LambdaStandInConfiguration.testCredentials
    var region = "us-east-1"

    struct Reply {
        var status: Int
        var errorType: String?
        var body: [UInt8]
        var json: [String: Any] { ((try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any]) ?? [:] }
    }

    func send(_ method: String, _ connectionID: String, body: [UInt8] = []) async throws -> Reply {
        let encoded = connectionID.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? connectionID
        let url = URL(string: endpoint.absoluteString + "/@connections/" + encoded)!
        let signed = try SigV4Signer(service: "execute-api", region: region)
            .sign(SigV4Request(method: method, url: url, payload: .bytes(body)), credentials: credentials, date: Date())
        var request = HTTPClientRequest(url: url.absoluteString)
        request.method = .init(rawValue: method)
        for header in signed.request.headers where header.name.lowercased() != "host" {
            request.headers.add(name: header.name, value: header.value)
        }
        if !body.isEmpty { request.body = .bytes(ByteBuffer(bytes: body)) }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
        let bytes = try await response.body.collect(upTo: 1 << 20)
        return Reply(status: Int(response.status.code), errorType: response.headers.first(name: "x-amzn-ErrorType"), body: Array(buffer: bytes))
    }
}

/// A function answering `$connect` with 200 and the first offered subprotocol, echoing each
/// message back through the Management API as `echo:<body>`.
@Sendable func echoFunction(_ standIn: @escaping @Sendable () -> LambdaStandIn?) -> @Sendable (TestRuntime.Invocation, TestRuntime) async throws -> Void {
    { invocation, runtime in
        let context = invocation.requestContext
        switch context["eventType"] as? String {
        case "CONNECT":
            let headers = invocation.event["headers"] as? [String: String] ?? [:]
            var reply: [String: any Sendable] = ["statusCode": 200]
            if let offered = headers.first(where: { $0.key.lowercased() == "sec-websocket-protocol" })?.value {
                reply["headers"] = ["Sec-WebSocket-Protocol": String(offered.split(separator: ",")[0]).trimmingCharacters(in: .whitespaces)]
            }
            _ = try await runtime.respond(invocation.requestID, json: reply)
        case "MESSAGE":
            if let standIn = standIn(), let id = context["connectionId"] as? String, let body = invocation.event["body"] as? String {
                _ = try await ManagementClient(endpoint: standIn.managementEndpoint).send("POST", id, body: Array("echo:\(body)".utf8))
            }
            _ = try await runtime.respond(invocation.requestID, json: ["statusCode": 200])
        default:
            _ = try await runtime.respond(invocation.requestID, json: ["statusCode": 200])
        }
    }
}

/// The upgrade request of a WebSocket client, sent raw so the test sees the status.
func upgradeStatus(_ standIn: LambdaStandIn, protocols: String?) async throws -> Int {
    var headers: HTTPHeaders = ["Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="]
    if let protocols { headers.add(name: "Sec-WebSocket-Protocol", value: protocols) }
    let address = "\(standIn.webSocketURL.host ?? "127.0.0.1"):\(standIn.webSocketURL.port ?? 0)"
    return try await RawHTTP.exchange(address, method: .GET, path: standIn.webSocketURL.path, headers: headers).status
}

@Suite("Lambda stand-in: Runtime API", .timeLimit(.minutes(1)))
struct LambdaRuntimeAPITests {
    /// Invokes `handler` and returns the error the invocation failed with (nil if it succeeded).
    func failure(of standIn: LambdaStandIn) async throws -> LambdaFunctionError? {
        do {
            _ = try await standIn.invoke(function: "handler", payload: Array("{}".utf8))
            return nil
        } catch let error as LambdaFunctionError { return error }
    }

    @Test("next hands out the event with its headers; a buffered response reaches the invoker")
    func bufferedResponse() async throws {
        try await withStandIn(environments: 0) { standIn, _ in
            let runtime = TestRuntime(address: standIn.runtimeAPI(for: "handler"))
            let before = Int64(Date().timeIntervalSince1970 * 1000)
            async let reply = standIn.invoke(function: "handler", payload: Array(#"{"n":1}"#.utf8))
            let invocation = try await runtime.next()
            #expect(invocation.payload == Array(#"{"n":1}"#.utf8))
            #expect(invocation.functionARN == "arn:aws:lambda:us-east-1:123456789012:function:handler")
            #expect(invocation.traceID.hasPrefix("Root=1-"))
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            // 30 s from when the invocation started, whenever a busy machine gets here.
            #expect(invocation.deadlineMs >= before + 30_000 && invocation.deadlineMs <= now + 30_000)
            #expect(try await runtime.respond(invocation.requestID, Array("done".utf8), contentType: "text/plain") == 202)
            let answer = try await reply
            #expect(answer.mode == .buffered)
            #expect(answer.contentType == "text/plain")
            #expect(try await answer.collect() == Array("done".utf8))
            // A second response for the same request is refused, an unknown id too.
            #expect(try await runtime.respond(invocation.requestID, Array("again".utf8)) == 403)
            #expect(try await runtime.respond("no-such-request", Array("x".utf8)) == 400)
        }
    }

    @Test("a streamed response arrives chunk by chunk and ends with the error of its trailers")
    func streamingWithErrorTrailer() async throws {
        try await withStandIn(environments: 0) { standIn, _ in
            let runtime = TestRuntime(address: standIn.runtimeAPI(for: "handler"))
            let firstSeen = Signal()
            async let status: Int = {
                let invocation = try await runtime.next()
                return try await runtime.stream(invocation.requestID, error: (type: "Runtime.StreamError", message: "broke")) { writer in
                    try await writer.chunk("first ")
                    _ = await firstSeen.wait()
                    try await writer.chunk("second")
                }
            }()
            let reply = try await standIn.invoke(function: "handler", payload: Array("{}".utf8))
            #expect(reply.mode == .streaming)
            var iterator = reply.body.makeAsyncIterator()
            let first = try await iterator.next()
            #expect(first.map { String(buffer: $0) } == "first ")
            firstSeen.raise()
            var rest = ""
            do {
                while let chunk = try await iterator.next() { rest += String(buffer: chunk) }
                Issue.record("the body ended without the trailer's error")
            } catch let error as LambdaFunctionError {
                #expect(error.errorType == "Runtime.StreamError")
                #expect(error.errorMessage == "broke")
            }
            #expect(rest == "second")
            #expect(try await status == 202)
        }
    }

    @Test("error before the first byte fails the invocation; after an answer it is refused")
    func errorEndpoint() async throws {
        try await withStandIn(environments: 0) { standIn, _ in
            let runtime = TestRuntime(address: standIn.runtimeAPI(for: "handler"))
            async let outcome = failure(of: standIn)
            let invocation = try await runtime.next()
            #expect(try await runtime.error(invocation.requestID, type: "Handler.Failed", message: "no") == 202)
            #expect(try await outcome == LambdaFunctionError(errorType: "Handler.Failed", errorMessage: "no"))
            #expect(try await runtime.error(invocation.requestID, type: "Handler.Failed", message: "twice") == 403)
            #expect(try await runtime.error("unknown", type: "X", message: "y") == 400)
        }
    }

    @Test("init/error fails the invocations waiting for an environment and is recorded")
    func initError() async throws {
        try await withStandIn(environments: 0) { standIn, _ in
            let runtime = TestRuntime(address: standIn.runtimeAPI(for: "handler"))
            let waiting = Task { try await standIn.invoke(function: "handler", payload: Array("{}".utf8)) }
            while standIn.invocationCount(of: "handler") == 0 { try await Task.sleep(for: .milliseconds(10)) }
            #expect(try await runtime.initError(type: "Runtime.ConfigError", message: "missing setting") == 202)
            await #expect(throws: LambdaFunctionError(errorType: "Runtime.ConfigError", errorMessage: "missing setting")) {
                _ = try await waiting.value
            }
            #expect(standIn.initErrors(of: "handler").map(\.errorType) == ["Runtime.ConfigError"])
        }
    }

    @Test("an invocation past its deadline fails with Task.TimedOut and its late response is refused")
    func deadline() async throws {
        var configuration = LambdaStandInConfiguration()
        configuration.functionTimeout = .milliseconds(500)
        try await withStandIn(configuration, environments: 0) { standIn, _ in
            let runtime = TestRuntime(address: standIn.runtimeAPI(for: "handler"))
            async let outcome = failure(of: standIn)
            let invocation = try await runtime.next()
            try await Task.sleep(for: .milliseconds(800))
            #expect(try await outcome?.errorType == "Task.TimedOut")
            #expect(try await runtime.respond(invocation.requestID, Array("late".utf8)) == 403)
        }
    }

    @Test("each invocation goes to exactly one of the polling environments")
    func onePollerPerInvocation() async throws {
        try await withStandIn(environments: 0) { standIn, _ in
            let runtime = TestRuntime(address: standIn.runtimeAPI(for: "handler"))
            async let a = runtime.next()
            async let b = runtime.next()
            while standIn.idleEnvironments(of: "handler") < 2 { try await Task.sleep(for: .milliseconds(10)) }
            async let first = standIn.invoke(function: "handler", payload: Array("1".utf8))
            async let second = standIn.invoke(function: "handler", payload: Array("2".utf8))
            let (x, y) = try await (a, b)
            #expect(Set([x.payload, y.payload]) == Set([Array("1".utf8), Array("2".utf8)]))
            #expect(x.requestID != y.requestID)
            for invocation in [x, y] { #expect(try await runtime.respond(invocation.requestID, invocation.payload) == 202) }
            #expect(try await first.collect() == Array("1".utf8))
            #expect(try await second.collect() == Array("2".utf8))
        }
    }
}

@Suite("Lambda stand-in: API Gateway WebSocket and Management API", .timeLimit(.minutes(1)))
struct APIGatewayStandInTests {
    @Test("$connect accepts with the chosen subprotocol; a message becomes a MESSAGE event; the Management API's post reaches the client; 410 after the disconnect")
    func roundTrip() async throws {
        let holder = Mutex<LambdaStandIn?>(nil)
        try await withStandIn(function: echoFunction { holder.withLock { $0 } }) { standIn, log in
            holder.withLock { $0 = standIn }
            var configuration = WebSocketClientConfiguration()
            configuration.additionalHeaders[.secWebSocketProtocol] = "medview.v1, medview.bearer.abc"
            let received = Mutex<[String]>([])
            let url = standIn.webSocketURL.absoluteString + "?client=test"
            _ = try await WebSocketClient.connect(url: url, configuration: configuration, logger: Logger(label: "test-client")) { inbound, outbound, _ in
                try await outbound.write(.text("hello"))
                for try await message in inbound.messages(maxSize: 1 << 20) {
                    if case .text(let text) = message { received.withLock { $0.append(text) } }
                    break
                }
            }
            #expect(received.withLock { $0 } == ["echo:hello"])
            let connect = try await log.first("CONNECT")
            #expect(connect.requestContext["routeKey"] as? String == "$connect")
            #expect(connect.requestContext["stage"] as? String == "dev")
            #expect((connect.requestContext["identity"] as? [String: Any])?["sourceIp"] as? String == "127.0.0.1")
            #expect((connect.event["queryStringParameters"] as? [String: String])?["client"] == "test")
            let connectionID = try #require(connect.requestContext["connectionId"] as? String)
            let message = try await log.first("MESSAGE")
            #expect(message.event["body"] as? String == "hello")
            #expect(message.requestContext["connectionId"] as? String == connectionID)
            #expect(message.requestContext["messageId"] != nil)
            let disconnect = try await log.first("DISCONNECT")
            #expect(disconnect.requestContext["disconnectStatusCode"] as? Int != nil)
            let gone = try await ManagementClient(endpoint: standIn.managementEndpoint).send("POST", connectionID, body: Array("late".utf8))
            #expect(gone.status == 410)
            #expect(gone.errorType == "GoneException")
        }
    }

    @Test("the upgrade is refused with $connect's status when it is not 2xx, with 400 when the reply leaves out the offered subprotocol")
    func connectRefusals() async throws {
        try await withStandIn(function: { invocation, runtime in
            let offered = (invocation.event["headers"] as? [String: String])?.first { $0.key.lowercased() == "sec-websocket-protocol" }?.value
            switch offered {
            case "deny": _ = try await runtime.respond(invocation.requestID, json: ["statusCode": 403])
            case "silent": _ = try await runtime.respond(invocation.requestID, json: ["statusCode": 200])
            case "medview.v1": _ = try await runtime.respond(invocation.requestID, json: ["statusCode": 200, "headers": ["Sec-WebSocket-Protocol": "medview.v1"]])
            default: _ = try await runtime.respond(invocation.requestID, json: ["statusCode": 200])
            }
        }) { standIn, _ in
            let chosen = try await upgradeStatus(standIn, protocols: "medview.v1")
            let noneOffered = try await upgradeStatus(standIn, protocols: nil)
            let leftOut = try await upgradeStatus(standIn, protocols: "silent")
            let denied = try await upgradeStatus(standIn, protocols: "deny")
            #expect(chosen == 101)
            #expect(noneOffered == 101)
            #expect(leftOut == 400)
            #expect(denied == 403)
        }
    }

    @Test("a long invocation does not hold up the next message: it goes to another environment")
    func messagesRunIndependently() async throws {
        let release = Signal()
        try await withStandIn(environments: 2, function: { invocation, runtime in
            if invocation.event["body"] as? String == "slow" { _ = await release.wait() }
            _ = try await runtime.respond(invocation.requestID, json: ["statusCode": 200])
        }) { standIn, log in
            _ = try await WebSocketClient.connect(url: standIn.webSocketURL.absoluteString, logger: Logger(label: "test-client")) { _, outbound, _ in
                try await outbound.write(.text("slow"))
                _ = try await log.first("MESSAGE")
                try await outbound.write(.text("fast"))
                let second = try await log.first("MESSAGE", after: 1)
                #expect(second.event["body"] as? String == "fast")
                release.raise()
            }
        }
    }

    @Test("GET describes the connection, DELETE closes it, a post over 128 KB is 413, a bad signature is 403")
    func managementOperations() async throws {
        try await withStandIn(function: { invocation, runtime in
            _ = try await runtime.respond(invocation.requestID, json: ["statusCode": 200])
        }) { standIn, log in
            let management = ManagementClient(endpoint: standIn.managementEndpoint)
            // API Gateway delivers a message in frames of up to 32 KB (the client's default is 16 KB).
            let configuration = WebSocketClientConfiguration(maxFrameSize: 32 * 1024)
            let close = try await WebSocketClient.connect(url: standIn.webSocketURL.absoluteString, configuration: configuration, logger: Logger(label: "test-client")) { inbound, outbound, _ in
                try await outbound.write(.text("hi"))
                let id = try #require(try await log.first("MESSAGE").requestContext["connectionId"] as? String)
                let described = try await management.send("GET", id)
                #expect(described.status == 200)
                #expect(described.json["connectedAt"] is String)
                #expect(described.json["lastActiveAt"] is String)
                #expect((described.json["identity"] as? [String: Any])?["sourceIp"] as? String == "127.0.0.1")
                let tooLarge = try await management.send("POST", id, body: Array(repeating: UInt8(ascii: "a"), count: 131_073))
                #expect(tooLarge.status == 413)
                #expect(tooLarge.errorType == "PayloadTooLargeException")
                var wrongKey = management
                wrongKey.credentials = SigV4Credentials(accessKeyID: LambdaStandInConfiguration.testCredentials.accessKeyID, secretAccessKey: "wrong")
                let refused = try await wrongKey.send("POST", id, body: Array("x".utf8))
                #expect(refused.status == 403)
                #expect(refused.errorType == "InvalidSignatureException")
                var wrongRegion = management
                wrongRegion.region = "eu-west-1"
                #expect(try await wrongRegion.send("GET", id).errorType == "InvalidSignatureException")
                let largest = try await management.send("POST", id, body: Array(repeating: UInt8(ascii: "b"), count: 131_072))
                #expect(largest.status == 200)
                #expect(try await management.send("DELETE", id).status == 204)
                var sizes: [Int] = []
                for try await message in inbound.messages(maxSize: 1 << 20) {
                    if case .text(let text) = message { sizes.append(text.utf8.count) }
                }
                #expect(sizes == [131_072])
                #expect(try await management.send("GET", id).status == 410)
            }
            #expect(close?.closeCode == .normalClosure)
            let disconnect = try await log.first("DISCONNECT")
            #expect(disconnect.requestContext["disconnectStatusCode"] as? Int == 1000)
        }
    }

    @Test("a post that does not fit the connection's send buffer is 429 LimitExceededException")
    func sendBufferFull() async throws {
        var configuration = LambdaStandInConfiguration()
        configuration.connectionSendBuffer = 1000
        try await withStandIn(configuration, function: { invocation, runtime in
            _ = try await runtime.respond(invocation.requestID, json: ["statusCode": 200])
        }) { standIn, log in
            let management = ManagementClient(endpoint: standIn.managementEndpoint)
            _ = try await WebSocketClient.connect(url: standIn.webSocketURL.absoluteString, logger: Logger(label: "test-client")) { inbound, outbound, _ in
                try await outbound.write(.text("hi"))
                let id = try #require(try await log.first("MESSAGE").requestContext["connectionId"] as? String)
                let full = try await management.send("POST", id, body: Array(repeating: UInt8(ascii: "z"), count: 1001))
                #expect(full.status == 429)
                #expect(full.errorType == "LimitExceededException")
                let fits = try await management.send("POST", id, body: Array("fits".utf8))
                #expect(fits.status == 200)
                var iterator = inbound.messages(maxSize: 1 << 16).makeAsyncIterator()
                #expect(try await iterator.next() == .text("fits"))
            }
        }
    }

    @Test("a connection idle past the idle timeout is closed with 1001 and gets a $disconnect")
    func idleTimeout() async throws {
        var configuration = LambdaStandInConfiguration()
        // 1 s, counted from when the stand-in starts serving the socket: a close that follows the
        // 101 closely can be lost by the test's client (see APIGatewayConnection.init).
        configuration.idleTimeout = .seconds(1)
        try await withStandIn(configuration, function: { invocation, runtime in
            _ = try await runtime.respond(invocation.requestID, json: ["statusCode": 200])
        }) { standIn, log in
            let started = ContinuousClock.now
            let close = try await WebSocketClient.connect(url: standIn.webSocketURL.absoluteString, logger: Logger(label: "test-client")) { inbound, outbound, _ in
                try await outbound.write(.text("one"))
                for try await _ in inbound {}
            }
            #expect(close?.closeCode == .goingAway)
            #expect(ContinuousClock.now - started >= .seconds(1))
            let disconnect = try await log.first("DISCONNECT")
            #expect(disconnect.requestContext["disconnectStatusCode"] as? Int == 1001)
        }
    }

    @Test("a client message over 128 KB closes the connection with 1009")
    func oversizeMessage() async throws {
        try await withStandIn(function: { invocation, runtime in
            _ = try await runtime.respond(invocation.requestID, json: ["statusCode": 200])
        }) { standIn, _ in
            let close = try await WebSocketClient.connect(url: standIn.webSocketURL.absoluteString, logger: Logger(label: "test-client")) { inbound, outbound, _ in
                try await outbound.write(.text(String(repeating: "x", count: 16 * 1024)))
                try await outbound.writeTextMessage(String(repeating: "y", count: 140 * 1024))
                for try await _ in inbound {}
            }
            #expect(close?.closeCode == .messageTooLarge)
        }
    }
}

@Suite("Lambda stand-in: function URL", .timeLimit(.minutes(1)))
struct FunctionURLStandInTests {
    /// A JSON request to the function URL at `pathAndQuery` (relative to its `/`).
    func callFunctionURL(_ standIn: LambdaStandIn, _ method: HTTPMethod, _ pathAndQuery: String, lastEventID: String, json: String) async throws -> HTTPClientResponse {
        var request = HTTPClientRequest(url: standIn.functionURL.absoluteString + pathAndQuery)
        request.method = method
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "Last-Event-ID", value: lastEventID)
        request.body = .bytes(ByteBuffer(string: json))
        return try await HTTPClient.shared.execute(request, timeout: .seconds(20))
    }

    @Test("the prelude sets status, headers and cookies, and the body streams before the function finishes")
    func streamingPrelude() async throws {
        let firstSeen = Signal()
        let sawFirstBeforeEnd = Mutex(false)
        try await withStandIn(function: { invocation, runtime in
            _ = try await runtime.stream(invocation.requestID, contentType: LambdaStandIn.httpIntegrationContentType) { writer in
                let prelude = #"{"statusCode":201,"headers":{"Content-Type":"text/event-stream","X-Test":"yes"},"cookies":["a=b"]}"#
                var buffer = ByteBuffer(string: prelude)
                buffer.writeBytes([UInt8](repeating: 0, count: 8))
                buffer.writeString("data: one\n\n")
                try await writer.write(.body(.byteBuffer(buffer)))
                let seen = await firstSeen.wait()
                sawFirstBeforeEnd.withLock { $0 = seen }
                try await writer.chunk("data: two\n\n")
            }
        }) { standIn, _ in
            let response = try await callFunctionURL(standIn, .POST, "chat/stream?x=1&y=2", lastEventID: "7", json: #"{"q":"hi"}"#)
            #expect(response.status.code == 201)
            #expect(response.headers.first(name: "Content-Type") == "text/event-stream")
            #expect(response.headers.first(name: "X-Test") == "yes")
            #expect(response.headers.first(name: "Set-Cookie") == "a=b")
            var text = ""
            for try await chunk in response.body {
                text += String(buffer: chunk)
                if text.contains("data: one\n\n") { firstSeen.raise() }
            }
            #expect(text == "data: one\n\ndata: two\n\n")
            #expect(sawFirstBeforeEnd.withLock { $0 })
        }
    }

    @Test("the request becomes a payload 2.0 event; a buffered reply gives status, headers and body")
    func bufferedEvent() async throws {
        let seen = Mutex<[String: String]>([:])
        try await withStandIn(function: { invocation, runtime in
            let event = invocation.event
            let http = (event["requestContext"] as? [String: Any])?["http"] as? [String: Any]
            let headers = event["headers"] as? [String: String] ?? [:]
            seen.withLock {
                $0["version"] = event["version"] as? String
                $0["rawPath"] = event["rawPath"] as? String
                $0["rawQueryString"] = event["rawQueryString"] as? String
                $0["method"] = http?["method"] as? String
                $0["body"] = event["body"] as? String
                $0["last-event-id"] = headers["last-event-id"]
            }
            _ = try await runtime.respond(invocation.requestID, json: ["statusCode": 202, "headers": ["X-Reply": "1"], "body": "accepted"])
        }) { standIn, _ in
            let response = try await callFunctionURL(standIn, .PUT, "v1/things?a=1", lastEventID: "42", json: #"{"k":"v"}"#)
            #expect(response.status.code == 202)
            #expect(response.headers.first(name: "X-Reply") == "1")
            #expect(String(buffer: try await response.body.collect(upTo: 1 << 16)) == "accepted")
        }
        let event = seen.withLock { $0 }
        #expect(event["version"] == "2.0")
        #expect(event["rawPath"] == "/v1/things")
        #expect(event["rawQueryString"] == "a=1")
        #expect(event["method"] == "PUT")
        #expect(event["body"] == #"{"k":"v"}"#)
        #expect(event["last-event-id"] == "42")
    }
}
