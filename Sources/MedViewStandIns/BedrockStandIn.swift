import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import MedViewAWS
import NIOCore
import ServiceLifecycle
import Synchronization

/// A local stand-in for Amazon Bedrock Runtime's streaming operations, for tests and development.
///
/// It answers `POST /model/{modelId}/converse-stream` and
/// `POST /model/{modelId}/invoke-with-response-stream` with event streams written by
/// ``EventStreamEncoder``, and their unstreamed forms `/converse` and `/invoke` with one JSON
/// answer, after checking each request's SigV4 signature against
/// ``Configuration/credentials`` (or a bearer API key): a bad signature gets 403 with
/// `x-amzn-ErrorType` as AWS sends it. What it answers is scripted by directives in the last user
/// message (``StandInScript``). It never logs message text.
public struct BedrockStandIn: Sendable {
    /// How the stand-in runs.
    public struct Configuration: Sendable {
        public var host: String
        /// 0 picks a free port.
        public var port: Int
        /// The only keys it accepts.
        public var credentials: SigV4Credentials
        /// A Bedrock API key it accepts as `Authorization: Bearer`.
        public var bearerToken: String
        /// The answer when the message does not say.
        public var defaultText: String

        public init(host: String = "127.0.0.1", port: Int = 0, credentials: SigV4Credentials = BedrockStandIn.testCredentials,
                    bearerToken: String = BedrockStandIn.testBearerToken, defaultText: String = StandInScript.defaultText) {
            self.host = host
            self.port = port
            self.credentials = credentials
            self.bearerToken = bearerToken
            self.defaultText = defaultText
        }
    }

    /// The test keys (not real AWS keys).
    public static let testCredentials = SigV4Credentials(accessKeyID: "AKIDSTANDINEXAMPLE", secretAccessKey: "standin/K7MDENG+bPxRfiCYSTANDINKEY")
    /// The test Bedrock API key.
    public static let testBearerToken = "bedrock-standin-api-key"

    public let configuration: Configuration
    /// What it has served so far.
    public let statistics = Statistics()
    let ledger = AttemptLedger()

    /// Counters of what the stand-in served (readable while it runs).
    public final class Statistics: Sendable {
        let counters = Mutex([String: Int]())
        /// Requests that reached an operation (signed or not).
        public var requests: Int { counters.withLock { $0["requests", default: 0] } }
        /// Event streams written to the end.
        public var streamsCompleted: Int { counters.withLock { $0["completed", default: 0] } }
        /// Event streams cut off because the client went away.
        public var streamsAborted: Int { counters.withLock { $0["aborted", default: 0] } }
        func add(_ key: String) { counters.withLock { $0[key, default: 0] += 1 } }
    }

    /// A running stand-in, as ``withRunning(configuration:_:)`` hands it to its body.
    public struct Running: Sendable {
        /// `http://HOST:PORT`.
        public var endpoint: String
        public var statistics: Statistics
    }

    public init(configuration: Configuration = .init()) {
        self.configuration = configuration
    }

    /// Counts attempts of the same request (same body) for "fail N times, then succeed" scripts.
    actor AttemptLedger {
        private var counts: [String: Int] = [:]
        func next(_ key: String) -> Int {
            let n = (counts[key] ?? 0) + 1
            counts[key] = n
            return n
        }
    }

    /// The Hummingbird application; `onRunning` gets the bound port.
    public func application(logger: Logger, onRunning: @escaping @Sendable (Int) async -> Void = { _ in }) -> some ApplicationProtocol {
        let router = Router()
        let standIn = self
        router.post("**") { request, _ -> Response in
            try await standIn.respond(request, logger: logger)
        }
        router.get("/ping") { _, _ in "ok" }
        return Application(
            router: router,
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "bedrock-standin"),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? standIn.configuration.port) },
            logger: logger
        )
    }

    /// Runs a stand-in for the duration of `body`, which gets its endpoint (`http://127.0.0.1:PORT`).
    public static func withRunning<T: Sendable>(configuration: Configuration = .init(), _ body: @escaping @Sendable (Running) async throws -> T) async throws -> T {
        var logger = Logger(label: "bedrock-standin")
        logger.logLevel = .error
        let (stream, continuation) = AsyncStream.makeStream(of: Int.self)
        let standIn = BedrockStandIn(configuration: configuration)
        let app = standIn.application(logger: logger) { port in continuation.yield(port) }
        let group = ServiceGroup(configuration: .init(services: [app], logger: logger))
        return try await withThrowingTaskGroup(of: T?.self) { tasks in
            tasks.addTask { try await group.run(); return nil }
            var iterator = stream.makeAsyncIterator()
            guard let port = await iterator.next() else { throw CancellationError() }
            let result: T
            do {
                result = try await body(Running(endpoint: "http://\(configuration.host):\(port)", statistics: standIn.statistics))
            } catch {
                await group.triggerGracefulShutdown()
                try? await tasks.waitForAll()
                throw error
            }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
            return result
        }
    }

    // MARK: - Handling

    enum Operation: String { case converse = "converse-stream", invoke = "invoke-with-response-stream" }

    func respond(_ request: Request, logger: Logger) async throws -> Response {
        let body = Array(buffer: try await request.body.collect(upTo: 4 * 1024 * 1024))
        let rawPath = request.uri.path
        let segments = rawPath.split(separator: "/", omittingEmptySubsequences: false)
        guard segments.count == 4, segments[0].isEmpty, segments[1] == "model", let (operation, streaming) = Self.operation(segments[3]),
              let modelID = String(segments[2]).removingPercentEncoding, !modelID.isEmpty
        else {
            return Self.error(404, "UnknownOperationException", "The operation is not supported by the Bedrock stand-in.")
        }
        // Authentication: a bearer API key, or a SigV4 signature over the request as received.
        var headers: [(name: String, value: String)] = []
        if let authority = request.head.authority { headers.append(("host", authority)) }
        for field in request.headers { headers.append((field.name.rawName, field.value)) }
        if let auth = headers.first(where: { $0.name.lowercased() == "authorization" })?.value, auth.hasPrefix("Bearer ") {
            guard SigV4Verifier.constantTimeEqual(String(auth.dropFirst(7)), configuration.bearerToken) else {
                return Self.error(403, "UnrecognizedClientException", "The API key included in the request is invalid.")
            }
        } else {
            do throws(SigV4Verifier.Failure) {
                _ = try SigV4Verifier(credentials: configuration.credentials, service: "bedrock")
                    .verify(method: request.method.rawValue, path: rawPath, query: request.uri.query, headers: headers, body: body)
            } catch {
                logger.info("standin.signature_rejected", metadata: ["error.code": "\(error.code)"])
                return Self.error(403, error.code, error.message)
            }
        }
        guard let json = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any],
              let messages = json["messages"] as? [[String: Any]], let last = messages.last, (last["role"] as? String) == "user"
        else {
            return Self.error(400, "ValidationException", "The request body must have messages ending with a user message.")
        }
        if operation == .invoke, json["anthropic_version"] as? String != "bedrock-2023-05-31" {
            return Self.error(400, "ValidationException", "anthropic_version must be bedrock-2023-05-31.")
        }
        let text = ((last["content"] as? [[String: Any]]) ?? []).compactMap { $0["text"] as? String }.joined(separator: "\n")
        let script = StandInScript(message: text, defaultText: configuration.defaultText)
        statistics.add("requests")
        let statistics = self.statistics
        let attempt = await ledger.next(String(segments[3]) + modelID + SHA256.hash(data: body).map { String(format: "%02x", $0) }.joined())
        logger.info("standin.request", metadata: ["operation": "\(segments[3])", "request.bytes": "\(body.count)", "attempt": "\(attempt)"])
        if attempt <= script.throttleAttempts {
            return Self.error(429, "ThrottlingException", "Too many requests, please wait before trying again.")
        }
        if case let (status, code)? = script.httpError {
            return Self.error(status, code, "Scripted error from the Bedrock stand-in.")
        }
        let inputTokens = max(1, body.count / 4)
        let events = StandInEvents(operation: operation, modelID: modelID)
        guard streaming else { return Self.whole(script: script, attempt: attempt, events: events, inputTokens: inputTokens, statistics: statistics) }
        return Response(
            status: .ok,
            headers: [.contentType: "application/vnd.amazon.eventstream", HTTPField.Name("x-amzn-RequestId")!: UUID().uuidString.lowercased()],
            body: ResponseBody { writer in
              do {
                let encoder = EventStreamEncoder()
                func send(_ messages: [EventStreamMessage]) async throws {
                    var bytes: [UInt8] = []
                    for message in messages { try encoder.encode(message, into: &bytes) }
                    try await writer.write(ByteBuffer(bytes: bytes))
                }
                if attempt <= script.streamThrottleAttempts {
                    try await send([events.exception("throttlingException", "Too many tokens, please wait before trying again.")])
                    try await writer.finish(nil)
                    return
                }
                if let exception = script.exception {
                    try await send([events.exception(exception, "Scripted exception from the Bedrock stand-in.")])
                    try await writer.finish(nil)
                    return
                }
                try await send(events.start(inputTokens: inputTokens))
                var count = 0
                for delta in script.deltas {
                    if let failAfter = script.failAfterDeltas, count >= failAfter { break }
                    if script.delay > .zero { try await Task.sleep(for: script.delay) }
                    try await send([events.delta(delta)])
                    count += 1
                }
                if script.failAfterDeltas != nil, count >= script.failAfterDeltas! {
                    try await send([events.exception("modelStreamErrorException", "The model stream was interrupted.", originalStatusCode: 500)])
                } else {
                    try await send(events.end(stopReason: script.stopReason, inputTokens: inputTokens, outputTokens: count))
                }
                try await writer.finish(nil)
                statistics.add("completed")
              } catch {
                statistics.add("aborted")
                throw error
              }
            }
        )
    }

    /// An error answer as Bedrock sends it: `x-amzn-ErrorType` and a JSON `message`.
    /// The operation a path's last segment names, and whether it streams.
    static func operation(_ segment: Substring) -> (Operation, Bool)? {
        switch segment {
        case "converse-stream": (.converse, true)
        case "converse": (.converse, false)
        case "invoke-with-response-stream": (.invoke, true)
        case "invoke": (.invoke, false)
        default: nil
        }
    }

    /// An unstreamed answer (Converse, InvokeModel): the script's text in one JSON body; what a
    /// stream would have carried as an exception is an HTTP error, as Bedrock sends it.
    static func whole(script: StandInScript, attempt: Int, events: StandInEvents, inputTokens: Int, statistics: Statistics) -> Response {
        if attempt <= script.streamThrottleAttempts {
            return error(429, "ThrottlingException", "Too many tokens, please wait before trying again.")
        }
        if let exception = script.exception {
            let code = exception.prefix(1).uppercased() + exception.dropFirst()
            let status = switch exception {
            case "throttlingException": 429
            case "validationException": 400
            case "serviceUnavailableException": 503
            case "modelTimeoutException": 408
            default: 500
            }
            return error(status, code, "Scripted exception from the Bedrock stand-in.")
        }
        if script.failAfterDeltas != nil {
            return error(500, "InternalServerException", "The model failed before it answered.")
        }
        let deltas = script.deltas
        statistics.add("completed")
        return Response(
            status: .ok,
            headers: [.contentType: "application/json", HTTPField.Name("x-amzn-RequestId")!: UUID().uuidString.lowercased()],
            body: .init(byteBuffer: ByteBuffer(bytes: events.whole(text: deltas.joined(), stopReason: script.stopReason, inputTokens: inputTokens, outputTokens: deltas.count)))
        )
    }

    static func error(_ status: Int, _ code: String, _ message: String) -> Response {
        let body = (try? JSONSerialization.data(withJSONObject: ["message": message])) ?? Data()
        return Response(
            status: .init(code: status),
            headers: [
                .contentType: "application/json",
                HTTPField.Name("x-amzn-ErrorType")!: "\(code):http://internal.amazon.com/coral/com.amazon.bedrock/",
                HTTPField.Name("x-amzn-RequestId")!: UUID().uuidString.lowercased(),
            ],
            body: .init(byteBuffer: ByteBuffer(bytes: Array(body)))
        )
    }
}
