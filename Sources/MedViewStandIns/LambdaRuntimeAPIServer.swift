import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// The Lambda Runtime API (version 2018-06-01) of one function, on its own loopback port.
///
/// Plain SwiftNIO rather than Hummingbird: a streamed `/response` declares its errors in HTTP
/// trailers, which only the raw HTTP/1 parts carry.
///
/// - `GET /2018-06-01/runtime/invocation/next`: long-polls; the answer carries the event and
///   `Lambda-Runtime-Aws-Request-Id`, `-Deadline-Ms`, `-Invoked-Function-Arn`, `-Trace-Id`.
/// - `POST …/invocation/{id}/response`: 202. Buffered (at most 6 MB, else 413) or
///   `Lambda-Runtime-Function-Response-Mode: streaming` (chunked; the trailers
///   `Lambda-Runtime-Function-Error-Type` and `-Error-Body` (base64) end it with an error).
/// - `POST …/invocation/{id}/error`: 202 before the first response byte.
/// - `POST /2018-06-01/runtime/init/error`: 202.
/// - Unknown request id: 400 `InvalidRequestID`; a post after the invocation was answered or
///   timed out: 403 `InvalidStateTransition`; a bad response mode: 400; the stand-in stopping
///   while `next` waits: 500 (the runtime should exit).
struct LambdaRuntimeAPIServer: Sendable {
    typealias Connection = NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>

    let queue: LambdaFunctionQueue
    let host: String
    let logger: Logger

    /// The largest buffered response (Lambda: 6 MiB + 100 bytes, `interop/model.go` of the RIE).
    static let bufferedResponseLimit = 6 * 1024 * 1024 + 100
    /// The largest error or init-error body read.
    static let errorBodyLimit = 1024 * 1024
    static let base = "/2018-06-01/runtime"

    /// Binds, reports the port, then serves until cancelled: then the listener and every open
    /// connection close, and each accepted connection is still run to its end (NIO requires every
    /// `NIOAsyncChannel` to be consumed).
    func run(onListening: @Sendable (Int) -> Void) async throws {
        let open = OpenChannels()
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: host, port: 0) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    let connection = try Connection(wrappingChannelSynchronously: channel)
                    open.add(channel)
                    return connection
                }
            }
        onListening(server.channel.localAddress?.port ?? 0)
        // Not a child task: the accept loop must not see the cancellation (it would drop accepted
        // connections); closing the listener ends it instead.
        let accepting = Task {
            try await withThrowingDiscardingTaskGroup { group in
                try await server.executeThenClose { inbound in
                    for try await connection in inbound {
                        group.addTask {
                            await serve(connection)
                            open.remove(connection.channel)
                        }
                    }
                }
            }
        }
        try await withTaskCancellationHandler {
            try await accepting.value
        } onCancel: {
            server.channel.close(promise: nil)
            open.closeAll()
        }
    }

    /// The open connections, closed all at once at shutdown (and any accepted after it at once).
    final class OpenChannels: Sendable {
        private let state = Mutex<(closed: Bool, channels: [ObjectIdentifier: any Channel])>((false, [:]))

        func add(_ channel: any Channel) {
            let closed = state.withLock { state -> Bool in
                if !state.closed { state.channels[ObjectIdentifier(channel)] = channel }
                return state.closed
            }
            if closed { channel.close(promise: nil) }
        }

        func remove(_ channel: any Channel) {
            _ = state.withLock { $0.channels.removeValue(forKey: ObjectIdentifier(channel)) }
        }

        func closeAll() {
            let channels = state.withLock { state -> [any Channel] in
                state.closed = true
                defer { state.channels.removeAll() }
                return Array(state.channels.values)
            }
            for channel in channels { channel.close(promise: nil) }
        }
    }

    // MARK: - Routing

    enum Route: Equatable {
        case next
        case response(String)
        case error(String)
        case initError
        case unknown
    }

    static func route(method: HTTPMethod, uri: String) -> Route {
        let path = uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? uri
        guard path.hasPrefix(base + "/") else { return .unknown }
        let parts = path.dropFirst(base.count + 1).split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        switch (method, parts.count) {
        case (.GET, 2) where parts == ["invocation", "next"]: return .next
        case (.POST, 2) where parts == ["init", "error"]: return .initError
        case (.POST, 3) where parts[0] == "invocation" && !parts[1].isEmpty && parts[2] == "response": return .response(parts[1])
        case (.POST, 3) where parts[0] == "invocation" && !parts[1].isEmpty && parts[2] == "error": return .error(parts[1])
        default: return .unknown
        }
    }

    // MARK: - Serving a connection

    /// Reads the parts of one request after its head.
    struct Reader {
        var iterator: NIOAsyncChannelInboundStream<HTTPServerRequestPart>.AsyncIterator

        /// The next body chunk; nil at the end (with its trailers). Throws when the connection ends.
        mutating func nextChunk() async throws -> (chunk: ByteBuffer?, trailers: HTTPHeaders?) {
            switch try await iterator.next() {
            case .body(let buffer)?: return (buffer, nil)
            case .end(let trailers)?: return (nil, trailers ?? [:])
            case .head?, nil: throw ChannelError.eof
            }
        }

        /// The whole body; nil when it was larger than `limit` (the rest is read and dropped).
        mutating func collect(upTo limit: Int) async throws -> [UInt8]? {
            var bytes: [UInt8] = []
            var overflow = false
            while true {
                let (chunk, _) = try await nextChunk()
                guard let chunk else { return overflow ? nil : bytes }
                if bytes.count + chunk.readableBytes > limit { overflow = true; bytes = [] }
                if !overflow { bytes += chunk.readableBytesView }
            }
        }
    }

    func serve(_ connection: Connection) async {
        do {
            try await connection.executeThenClose { inbound, outbound in
                var reader = Reader(iterator: inbound.makeAsyncIterator())
                while let part = try await reader.iterator.next() {
                    guard case .head(let head) = part else { continue }
                    let keepGoing = try await handle(head, reader: &reader, outbound: outbound, channel: connection.channel)
                    if !keepGoing { return }
                }
            }
        } catch {
            logger.debug("lambda.runtime_api.connection_ended", metadata: ["function.name": "\(queue.name)", "error.type": "\(type(of: error))"])
        }
    }

    /// Answers one request. Returns false when the connection must close.
    func handle(_ head: HTTPRequestHead, reader: inout Reader, outbound: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>, channel: any Channel) async throws -> Bool {
        switch Self.route(method: head.method, uri: head.uri) {
        case .next:
            _ = try await reader.collect(upTo: 0)
            while true {
                guard let invocation = await nextInvocation(unlessClosed: channel) else {
                    guard channel.isActive else { return false }
                    try await write(outbound, status: .internalServerError, error: LambdaFunctionError(errorType: "Runtime.ShutDown", errorMessage: "The runtime should exit."))
                    return false
                }
                guard let deadline = invocation.dispatch() else { continue }
                var headers = HTTPHeaders()
                headers.add(name: "Content-Type", value: "application/json")
                headers.add(name: "Lambda-Runtime-Aws-Request-Id", value: invocation.requestID)
                headers.add(name: "Lambda-Runtime-Deadline-Ms", value: String(deadline))
                headers.add(name: "Lambda-Runtime-Invoked-Function-Arn", value: queue.arn)
                headers.add(name: "Lambda-Runtime-Trace-Id", value: invocation.traceID)
                // Undelivered (the head or the body could not be written): back to the queue's
                // head. Once the body is written the event is delivered: the runtime client reads
                // it by its Content-Length and may close before the end is written, and running
                // the invocation a second time would answer one message twice.
                do {
                    try await writeHead(outbound, status: .ok, headers: headers, body: invocation.payload)
                } catch {
                    queue.requeue(invocation)
                    throw error
                }
                try await outbound.write(.end(nil))
                logger.debug("lambda.invocation.dispatched", metadata: ["function.name": "\(queue.name)", "aws.request_id": "\(invocation.requestID)"])
                return true
            }

        case .response(let requestID):
            guard let invocation = queue.invocation(requestID) else {
                _ = try await reader.collect(upTo: 0)
                try await write(outbound, status: .badRequest, error: LambdaFunctionError(errorType: "InvalidRequestID", errorMessage: "Invalid request ID"))
                return true
            }
            let mode = head.headers.first(name: "Lambda-Runtime-Function-Response-Mode")
            if let mode, mode.lowercased() != "streaming" {
                _ = try await reader.collect(upTo: 0)
                try await write(outbound, status: .badRequest, error: LambdaFunctionError(errorType: "RuntimeInvalidResponseModeHeader", errorMessage: "Invalid Lambda-Runtime-Function-Response-Mode."))
                return true
            }
            let contentType = head.headers.first(name: "Content-Type")
            if mode == nil {
                guard let body = try await reader.collect(upTo: Self.bufferedResponseLimit) else {
                    invocation.fail(.responseTooLarge, onlyBeforeResponse: true)
                    try await write(outbound, status: .payloadTooLarge, error: .responseTooLarge)
                    return true
                }
                do {
                    try invocation.beginResponse(mode: .buffered, contentType: contentType)
                    invocation.write(ByteBuffer(bytes: body))
                    try invocation.finishResponse(error: nil)
                } catch {
                    try await write(outbound, status: .forbidden, error: Self.invalidState)
                    return true
                }
                try await write(outbound, status: .accepted, body: Array(#"{"status":"OK"}"#.utf8))
                return true
            }
            // Streaming: the function's bytes go on to the caller as they arrive.
            var accepted = true
            do {
                try invocation.beginResponse(mode: .streaming, contentType: contentType)
            } catch {
                accepted = false
            }
            while true {
                let chunk: ByteBuffer?, trailers: HTTPHeaders?
                do {
                    (chunk, trailers) = try await reader.nextChunk()
                } catch {
                    if accepted { invocation.fail(.truncated) }
                    throw error
                }
                if let chunk {
                    if accepted { invocation.write(chunk) }
                    continue
                }
                if accepted {
                    do {
                        try invocation.finishResponse(error: Self.trailerError(trailers ?? [:]))
                    } catch {
                        accepted = false
                    }
                }
                break
            }
            if accepted {
                try await write(outbound, status: .accepted, body: Array(#"{"status":"OK"}"#.utf8))
            } else {
                try await write(outbound, status: .forbidden, error: Self.invalidState)
            }
            return true

        case .error(let requestID):
            let body = try await reader.collect(upTo: Self.errorBodyLimit)
            guard let invocation = queue.invocation(requestID) else {
                try await write(outbound, status: .badRequest, error: LambdaFunctionError(errorType: "InvalidRequestID", errorMessage: "Invalid request ID"))
                return true
            }
            let error = Self.reportedError(body: body, headers: head.headers)
            if invocation.fail(error, onlyBeforeResponse: true) {
                try await write(outbound, status: .accepted, body: Array(#"{"status":"OK"}"#.utf8))
            } else {
                try await write(outbound, status: .forbidden, error: Self.invalidState)
            }
            return true

        case .initError:
            let body = try await reader.collect(upTo: Self.errorBodyLimit)
            queue.initFailed(Self.reportedError(body: body, headers: head.headers))
            logger.info("lambda.init_error", metadata: ["function.name": "\(queue.name)"])
            try await write(outbound, status: .accepted, body: Array(#"{"status":"OK"}"#.utf8))
            return true

        case .unknown:
            _ = try await reader.collect(upTo: 0)
            try await write(outbound, status: .notFound, error: LambdaFunctionError(errorType: "InvalidRequest", errorMessage: "Unknown Runtime API path."))
            return true
        }
    }

    /// Waits in the queue until an invocation comes or the poller's connection closes.
    func nextInvocation(unlessClosed channel: any Channel) async -> LambdaInvocation? {
        let queue = self.queue
        let waiting = Task { await queue.next() }
        channel.closeFuture.whenComplete { _ in waiting.cancel() }
        return await withTaskCancellationHandler {
            await waiting.value
        } onCancel: {
            waiting.cancel()
        }
    }

    static let invalidState = LambdaFunctionError(errorType: "InvalidStateTransition", errorMessage: "The invocation was already answered or has timed out.")

    /// The error of a `/error` or `/init/error` post: the JSON body's fields, else the
    /// `Lambda-Runtime-Function-Error-Type` header.
    static func reportedError(body: [UInt8]?, headers: HTTPHeaders) -> LambdaFunctionError {
        let headerType = headers.first(name: "Lambda-Runtime-Function-Error-Type")
        let object = body.flatMap { try? JSONSerialization.jsonObject(with: Data($0)) as? [String: Any] }
        return LambdaFunctionError(
            errorType: object?["errorType"] as? String ?? headerType ?? "Runtime.Unknown",
            errorMessage: object?["errorMessage"] as? String ?? ""
        )
    }

    /// The error declared in a streamed response's trailers, if any.
    static func trailerError(_ trailers: HTTPHeaders) -> LambdaFunctionError? {
        guard let type = trailers.first(name: "Lambda-Runtime-Function-Error-Type") else { return nil }
        let decoded = trailers.first(name: "Lambda-Runtime-Function-Error-Body")
            .flatMap { Data(base64Encoded: $0.trimmingCharacters(in: .whitespaces)) }
        let object = decoded.flatMap { try? JSONSerialization.jsonObject(with: $0) as? [String: Any] }
        return LambdaFunctionError(errorType: object?["errorType"] as? String ?? type,
                                   errorMessage: object?["errorMessage"] as? String ?? "")
    }

    // MARK: - Writing

    func write(_ outbound: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>, status: HTTPResponseStatus, error: LambdaFunctionError) async throws {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/json")
        try await write(outbound, status: status, headers: headers, body: error.json)
    }

    func write(_ outbound: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>, status: HTTPResponseStatus, headers: HTTPHeaders = ["Content-Type": "application/json"], body: [UInt8]) async throws {
        try await writeHead(outbound, status: status, headers: headers, body: body)
        try await outbound.write(.end(nil))
    }

    /// Writes a response's head (with its Content-Length) and whole body, not its end.
    func writeHead(_ outbound: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>, status: HTTPResponseStatus, headers: HTTPHeaders, body: [UInt8]) async throws {
        var headers = headers
        headers.replaceOrAdd(name: "Content-Length", value: String(body.count))
        try await outbound.write(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers)))
        try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: body))))
    }
}
