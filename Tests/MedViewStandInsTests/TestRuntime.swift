import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// One HTTP/1.1 exchange over a fresh connection, with full control of the request body
/// (chunks written as the test decides, trailers) — what a Lambda runtime does.
enum RawHTTP {
    struct Reply: Sendable {
        var status: Int
        var headers: HTTPHeaders
        var body: [UInt8]
        var text: String { String(decoding: body, as: UTF8.self) }
        var json: [String: Any] { ((try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any]) ?? [:] }
    }

    typealias Writer = NIOAsyncChannelOutboundWriter<HTTPClientRequestPart>

    /// Sends the head, lets `body` write body parts and return the trailers, then reads the reply.
    static func exchange(_ address: String, method: HTTPMethod, path: String, headers: HTTPHeaders = [:],
                         body: @Sendable (Writer) async throws -> HTTPHeaders? = { _ in nil }) async throws -> Reply {
        let parts = address.split(separator: ":")
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: String(parts[0]), port: Int(parts[1]) ?? 0) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(wrappingChannelSynchronously: channel)
                }
            }
        return try await channel.executeThenClose { inbound, outbound in
            var headers = headers
            if !headers.contains(name: "Host") { headers.add(name: "Host", value: address) }
            try await outbound.write(.head(HTTPRequestHead(version: .http1_1, method: method, uri: path, headers: headers)))
            let trailers = try await body(outbound)
            try await outbound.write(.end(trailers))
            var reply = Reply(status: 0, headers: [:], body: [])
            for try await part in inbound {
                switch part {
                case .head(let head):
                    reply.status = Int(head.status.code)
                    reply.headers = head.headers
                    if head.status == .switchingProtocols { return reply }
                case .body(let buffer): reply.body += buffer.readableBytesView
                case .end: return reply
                }
            }
            return reply
        }
    }

    /// A request with a buffered body (`Content-Length`).
    static func send(_ address: String, method: HTTPMethod, path: String, headers: HTTPHeaders = [:], body: [UInt8] = []) async throws -> Reply {
        var headers = headers
        headers.replaceOrAdd(name: "Content-Length", value: String(body.count))
        return try await exchange(address, method: method, path: path, headers: headers) { writer in
            if !body.isEmpty { try await writer.write(.body(.byteBuffer(ByteBuffer(bytes: body)))) }
            return nil
        }
    }
}

/// A minimal Lambda runtime written against the Runtime API, as a `bootstrap` would.
struct TestRuntime: Sendable {
    /// `AWS_LAMBDA_RUNTIME_API`.
    let address: String

    struct Invocation: Sendable {
        var requestID: String
        var deadlineMs: Int64
        var functionARN: String
        var traceID: String
        var payload: [UInt8]
        var event: [String: Any] { ((try? JSONSerialization.jsonObject(with: Data(payload))) as? [String: Any]) ?? [:] }
        var requestContext: [String: Any] { event["requestContext"] as? [String: Any] ?? [:] }
    }

    struct NoInvocation: Error { var status: Int }

    func next() async throws -> Invocation {
        let reply = try await RawHTTP.send(address, method: .GET, path: "/2018-06-01/runtime/invocation/next")
        guard reply.status == 200, let id = reply.headers.first(name: "Lambda-Runtime-Aws-Request-Id") else { throw NoInvocation(status: reply.status) }
        return Invocation(
            requestID: id,
            deadlineMs: Int64(reply.headers.first(name: "Lambda-Runtime-Deadline-Ms") ?? "") ?? 0,
            functionARN: reply.headers.first(name: "Lambda-Runtime-Invoked-Function-Arn") ?? "",
            traceID: reply.headers.first(name: "Lambda-Runtime-Trace-Id") ?? "",
            payload: reply.body
        )
    }

    /// A buffered response; returns the status (202).
    func respond(_ requestID: String, _ body: [UInt8], contentType: String = "application/json") async throws -> Int {
        try await RawHTTP.send(address, method: .POST, path: "/2018-06-01/runtime/invocation/\(requestID)/response",
                               headers: ["Content-Type": contentType], body: body).status
    }

    func respond(_ requestID: String, json: [String: any Sendable]) async throws -> Int {
        try await respond(requestID, Array(try JSONSerialization.data(withJSONObject: json)))
    }

    /// A streamed response: `chunks` writes the body; a non-nil `error` goes in the trailers.
    func stream(_ requestID: String, contentType: String = "application/octet-stream", error: (type: String, message: String)? = nil,
                chunks: @Sendable (RawHTTP.Writer) async throws -> Void) async throws -> Int {
        let headers: HTTPHeaders = [
            "Lambda-Runtime-Function-Response-Mode": "streaming",
            "Transfer-Encoding": "chunked",
            "Content-Type": contentType,
            "Trailer": "Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body",
        ]
        return try await RawHTTP.exchange(address, method: .POST, path: "/2018-06-01/runtime/invocation/\(requestID)/response", headers: headers) { writer in
            try await chunks(writer)
            guard let error else { return nil }
            let body = try JSONSerialization.data(withJSONObject: ["errorType": error.type, "errorMessage": error.message])
            return ["Lambda-Runtime-Function-Error-Type": error.type, "Lambda-Runtime-Function-Error-Body": body.base64EncodedString()]
        }.status
    }

    func error(_ requestID: String, type: String, message: String) async throws -> Int {
        let body = try JSONSerialization.data(withJSONObject: ["errorType": type, "errorMessage": message, "stackTrace": [String]()])
        return try await RawHTTP.send(address, method: .POST, path: "/2018-06-01/runtime/invocation/\(requestID)/error",
                                      headers: ["Lambda-Runtime-Function-Error-Type": "Unhandled"], body: Array(body)).status
    }

    func initError(type: String, message: String) async throws -> Int {
        let body = try JSONSerialization.data(withJSONObject: ["errorType": type, "errorMessage": message])
        return try await RawHTTP.send(address, method: .POST, path: "/2018-06-01/runtime/init/error", body: Array(body)).status
    }
}

extension RawHTTP.Writer {
    func chunk(_ text: String) async throws {
        try await write(.body(.byteBuffer(ByteBuffer(string: text))))
    }
}
