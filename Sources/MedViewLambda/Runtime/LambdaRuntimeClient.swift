import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// A client of the Lambda Runtime API (2018-06-01): `next`, buffered and streaming `response`,
/// `error` and `init/error`, over plain HTTP/1.1 on the address in `AWS_LAMBDA_RUNTIME_API`.
///
/// Each call uses its own connection to the local Runtime API (a loopback hop), so that a
/// streaming response can end by closing its connection, as the streaming spec asks.
/// `next` has no timeout: the process may be frozen while it waits.
public struct LambdaRuntimeClient: Sendable {
    /// The headers carrying a streamed response's late failure.
    public static let errorTypeTrailer = "Lambda-Runtime-Function-Error-Type"
    public static let errorBodyTrailer = "Lambda-Runtime-Function-Error-Body"

    let host: String
    let port: Int
    let group: any EventLoopGroup

    /// - Parameter endpoint: `host:port`, the value of `AWS_LAMBDA_RUNTIME_API`.
    public init(endpoint: String, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) throws(LambdaRuntimeError) {
        guard let colon = endpoint.lastIndex(of: ":"), let port = Int(endpoint[endpoint.index(after: colon)...]),
              (1...65535).contains(port), colon > endpoint.startIndex else { throw .invalidEndpoint(endpoint) }
        var host = String(endpoint[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        self.host = host
        self.port = port
        self.group = group
    }

    /// Waits for the next invocation.
    public func next() async throws(LambdaRuntimeError) -> LambdaInvocation {
        let path = "/2018-06-01/runtime/invocation/next"
        let reply = try await exchange(method: .GET, path: path, headers: [:], body: nil)
        try Self.check(reply.status, path: path, ok: 200)
        let context = try LambdaInvocationContext.parse { reply.headers.first(name: $0) }
        return LambdaInvocation(context: context, event: reply.body)
    }

    /// Sends a whole (buffered) response to invocation `requestId`.
    public func respond(requestId: String, body: ByteBuffer, contentType: String = "application/json") async throws(LambdaRuntimeError) {
        let path = "/2018-06-01/runtime/invocation/\(requestId)/response"
        let reply = try await exchange(method: .POST, path: path, headers: ["Content-Type": contentType], body: body)
        try Self.check(reply.status, path: path, ok: 202)
    }

    /// Reports that invocation `requestId` failed (before any response byte).
    public func reportError(requestId: String, _ error: LambdaErrorReport) async throws(LambdaRuntimeError) {
        try await postError(path: "/2018-06-01/runtime/invocation/\(requestId)/error", error)
    }

    /// Reports that the runtime could not start (Lambda then fails the invocation and retries init).
    public func reportInitError(_ error: LambdaErrorReport) async throws(LambdaRuntimeError) {
        try await postError(path: "/2018-06-01/runtime/init/error", error)
    }

    private func postError(path: String, _ error: LambdaErrorReport) async throws(LambdaRuntimeError) {
        let body = ByteBuffer(bytes: (try? JSONEncoder().encode(error)) ?? Data())
        let reply = try await exchange(method: .POST, path: path, headers: [
            "Content-Type": "application/json",
            "Lambda-Runtime-Function-Error-Type": error.errorType,
        ], body: body)
        try Self.check(reply.status, path: path, ok: 202)
    }

    /// Streams the response of invocation `requestId`: `Lambda-Runtime-Function-Response-Mode:
    /// streaming`, a chunked body written by `produce` as it goes, and, if `produce` throws, the
    /// failure in the declared trailers (`Lambda-Runtime-Function-Error-Type`, and the base64 of
    /// Lambda's error document in `Lambda-Runtime-Function-Error-Body`).
    ///
    /// - Returns: the error `produce` threw (already reported in the trailers), or `nil`.
    @discardableResult
    public func streamResponse(requestId: String, contentType: String, _ produce: (LambdaResponseWriter) async throws -> Void) async throws(LambdaRuntimeError) -> (any Error)? {
        let path = "/2018-06-01/runtime/invocation/\(requestId)/response"
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: host)
        headers.add(name: "Content-Type", value: contentType)
        headers.add(name: "Lambda-Runtime-Function-Response-Mode", value: "streaming")
        headers.add(name: "Transfer-Encoding", value: "chunked")
        headers.add(name: "Trailer", value: "\(Self.errorTypeTrailer), \(Self.errorBodyTrailer)")
        let channel = try await connect()
        do {
            return try await channel.executeThenClose { inbound, outbound in
                try await outbound.write(.head(HTTPRequestHead(version: .http1_1, method: .POST, uri: path, headers: headers)))
                let writer = LambdaResponseWriter(outbound)
                var failure: (any Error)?
                do {
                    try await produce(writer)
                    try await outbound.write(.end(nil))
                } catch let error as LambdaRuntimeError {
                    throw error
                } catch {
                    failure = error
                    let document = Self.document(for: error)
                    var trailers = HTTPHeaders()
                    trailers.add(name: Self.errorTypeTrailer, value: document.errorType)
                    trailers.add(name: Self.errorBodyTrailer, value: ((try? JSONEncoder().encode(document)) ?? Data()).base64EncodedString())
                    try await outbound.write(.end(trailers))
                }
                let reply = try await Self.read(inbound)
                try Self.check(reply.status, path: path, ok: 202)
                return failure
            }
        } catch let error as LambdaRuntimeError {
            throw error
        } catch {
            throw .connectionFailed(Self.describe(error))
        }
    }

    /// Lambda's error document for `error`: its type name and, for errors that describe
    /// themselves safely (``LambdaErrorReport``), their message.
    static func document(for error: any Error) -> LambdaErrorReport {
        if let given = error as? LambdaErrorReport { return given }
        return LambdaErrorReport(type: "Function.\(String(describing: type(of: error)))", message: "The function failed while streaming its response.")
    }

    // MARK: - HTTP

    typealias Connection = NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>

    struct Reply {
        var status: Int
        var headers: HTTPHeaders
        var body: ByteBuffer
    }

    private func connect() async throws(LambdaRuntimeError) -> Connection {
        do {
            return try await ClientBootstrap(group: group)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .connect(host: host, port: port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHTTPClientHandlers()
                        return try Connection(wrappingChannelSynchronously: channel)
                    }
                }
        } catch {
            throw .connectionFailed(Self.describe(error))
        }
    }

    private func exchange(method: HTTPMethod, path: String, headers extra: [String: String], body: ByteBuffer?) async throws(LambdaRuntimeError) -> Reply {
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: host)
        for (name, value) in extra.sorted(by: { $0.key < $1.key }) { headers.add(name: name, value: value) }
        if let body { headers.add(name: "Content-Length", value: "\(body.readableBytes)") }
        let channel = try await connect()
        do {
            return try await channel.executeThenClose { inbound, outbound in
                try await outbound.write(.head(HTTPRequestHead(version: .http1_1, method: method, uri: path, headers: headers)))
                if let body, body.readableBytes > 0 { try await outbound.write(.body(.byteBuffer(body))) }
                try await outbound.write(.end(nil))
                return try await Self.read(inbound)
            }
        } catch let error as LambdaRuntimeError {
            throw error
        } catch {
            throw .connectionFailed(Self.describe(error))
        }
    }

    private static func read(_ inbound: NIOAsyncChannelInboundStream<HTTPClientResponsePart>) async throws -> Reply {
        var head: HTTPResponseHead?
        var body = ByteBuffer()
        for try await part in inbound {
            switch part {
            case .head(let h): head = h
            case .body(var chunk): body.writeBuffer(&chunk)
            case .end:
                guard let head else { throw LambdaRuntimeError.connectionFailed("an answer without a head") }
                return Reply(status: Int(head.status.code), headers: head.headers, body: body)
            }
        }
        throw LambdaRuntimeError.connectionFailed("the connection closed before the answer ended")
    }

    private static func check(_ status: Int, path: String, ok: Int) throws(LambdaRuntimeError) {
        if status == ok || (200..<300).contains(status) { return }
        if status >= 500 { throw .nonRecoverable(path: path) }
        throw .rejected(path: path, status: status)
    }

    private static func describe(_ error: any Error) -> String {
        String(describing: type(of: error))
    }
}

/// Writes the body of a streaming response, piece by piece, as HTTP chunks.
public struct LambdaResponseWriter: Sendable {
    private let outbound: NIOAsyncChannelOutboundWriter<HTTPClientRequestPart>

    init(_ outbound: NIOAsyncChannelOutboundWriter<HTTPClientRequestPart>) {
        self.outbound = outbound
    }

    /// Sends `bytes` now (one chunk).
    public func write(_ bytes: ByteBuffer) async throws {
        guard bytes.readableBytes > 0 else { return }
        try await outbound.write(.body(.byteBuffer(bytes)))
    }

    /// Sends `text` as UTF-8 now.
    public func write(_ text: String) async throws {
        try await write(ByteBuffer(string: text))
    }
}
