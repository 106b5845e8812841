import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

extension LambdaStandIn {
    /// The content type of a streamed reply that starts with the http-integration prelude.
    public static let httpIntegrationContentType = "application/vnd.awslambda.http-integration-response"
    /// The largest prelude read (API Gateway wants the metadata within 16 KB).
    static let preludeLimit = 16 * 1024
    /// The largest request body a function URL accepts (Lambda's 6 MB invocation payload).
    static let functionURLRequestLimit = 6 * 1024 * 1024

    /// The function URL: every request, any method and path, invokes `function`.
    func functionURLApplication(function: String, onListening: @escaping @Sendable (Int) -> Void) -> some ApplicationProtocol {
        Application(
            responder: FunctionURLResponder(standIn: self, function: function),
            configuration: .init(address: .hostname(configuration.host, port: 0), serverName: "lambda-standin-function-url"),
            onServerRunning: { channel in onListening(channel.localAddress?.port ?? 0) },
            logger: logger
        )
    }
}

/// Turns HTTP requests into function URL invocations and their replies into HTTP responses.
///
/// - A streamed reply with ``LambdaStandIn/httpIntegrationContentType`` starts with a JSON prelude
///   (`statusCode`, `headers`, `cookies`) and 8 NUL bytes; the prelude gives the status and
///   headers, the rest is streamed chunk by chunk as the runtime posts it.
/// - Any other streamed reply is 200 with the runtime's content type, streamed.
/// - A buffered reply is read as the payload-2.0 response: an object with `statusCode` gives
///   status, headers, cookies and body (`isBase64Encoded`); anything else is a 200 JSON body.
/// - A function error before the first byte is 502; one after it cuts the response short (the
///   chunked body never ends), as a function URL does.
struct FunctionURLResponder: HTTPResponder {
    typealias Context = StandInRequestContext

    let standIn: LambdaStandIn
    let function: String

    func respond(to request: Request, context: Context) async throws -> Response {
        let body: [UInt8]
        do {
            body = Array(buffer: try await request.body.collect(upTo: LambdaStandIn.functionURLRequestLimit))
        } catch {
            return Self.plain(.contentTooLarge, "Request must be smaller than 6291456 bytes for the InvokeFunction operation")
        }
        let path = request.uri.path
        var headers: [(name: String, value: String)] = []
        if let authority = request.head.authority { headers.append(("host", authority)) }
        for field in request.headers { headers.append((field.name.rawName, field.value)) }
        let event = LambdaEvents.functionURL(
            .init(method: request.method.rawValue, rawPath: path.isEmpty ? "/" : path, rawQuery: request.uri.query,
                  headers: headers, body: body, sourceIP: context.sourceIP),
            urlID: standIn.functionURLID, region: standIn.configuration.region
        )
        let reply: LambdaInvocationReply
        do {
            reply = try await standIn.invoke(function: function, payload: event)
        } catch let error as LambdaFunctionError {
            standIn.logger.info("lambda.function_url.failed", metadata: ["function.name": "\(function)", "error.type": "\(error.errorType)"])
            return Self.plain(.badGateway, "Internal Server Error")
        }
        switch reply.mode {
        case .buffered:
            return try await Self.bufferedResponse(reply)
        case .streaming:
            return try await streamedResponse(reply)
        }
    }

    func streamedResponse(_ reply: LambdaInvocationReply) async throws -> Response {
        var iterator = reply.body.makeAsyncIterator()
        var status = HTTPResponse.Status.ok
        var headers = HTTPFields()
        var leftover = ByteBuffer()
        if reply.contentType?.lowercased().hasPrefix(LambdaStandIn.httpIntegrationContentType) == true {
            var prelude: [UInt8] = []
            var split: Int?
            do {
                while split == nil, let chunk = try await iterator.next() {
                    prelude += chunk.readableBytesView
                    split = Self.preludeEnd(prelude)
                    if split == nil, prelude.count > LambdaStandIn.preludeLimit { break }
                }
            } catch {
                return Self.plain(.badGateway, "Internal Server Error")
            }
            guard let split, let metadata = Self.prelude(Array(prelude[..<split])), Self.validStatus.contains(metadata.status) else {
                standIn.logger.info("lambda.function_url.bad_prelude", metadata: ["function.name": "\(function)"])
                return Self.plain(.badGateway, "Internal Server Error")
            }
            status = .init(code: metadata.status)
            headers = metadata.headers
            leftover = ByteBuffer(bytes: prelude[(split + 8)...])
        } else {
            headers[.contentType] = reply.contentType ?? "application/octet-stream"
        }
        let rest = UncheckedIterator(iterator: iterator)
        let first = leftover
        return Response(status: status, headers: headers, body: ResponseBody { writer in
            if first.readableBytes > 0 { try await writer.write(first) }
            var iterator = rest.iterator
            while let chunk = try await iterator.next() {
                try await writer.write(chunk)
            }
            try await writer.finish(nil)
        })
    }

    /// The iterator handed to the response body (used by one task at a time: first here, then
    /// in the body writer).
    struct UncheckedIterator: @unchecked Sendable {
        var iterator: AsyncThrowingStream<ByteBuffer, any Error>.AsyncIterator
    }

    /// The status codes a function may answer with (others are a 502).
    static let validStatus = 100...599

    /// The index of the 8 NUL bytes that end the prelude, if they have arrived.
    static func preludeEnd(_ bytes: [UInt8]) -> Int? {
        guard bytes.count >= 8 else { return nil }
        var run = 0
        for (index, byte) in bytes.enumerated() {
            run = byte == 0 ? run + 1 : 0
            if run == 8 { return index - 7 }
        }
        return nil
    }

    /// The prelude's status and headers (`Set-Cookie` for each cookie); nil when it is not JSON.
    static func prelude(_ bytes: [UInt8]) -> (status: Int, headers: HTTPFields)? {
        guard let object = (try? JSONSerialization.jsonObject(with: Data(bytes))) as? [String: Any] else { return nil }
        return (object["statusCode"] as? Int ?? 200, fields(object))
    }

    static func fields(_ object: [String: Any]) -> HTTPFields {
        var headers = HTTPFields()
        for (name, value) in object["headers"] as? [String: Any] ?? [:] {
            guard let fieldName = HTTPField.Name(name) else { continue }
            headers.append(HTTPField(name: fieldName, value: "\(value)"))
        }
        for cookie in object["cookies"] as? [String] ?? [] {
            headers.append(HTTPField(name: .setCookie, value: cookie))
        }
        return headers
    }

    static func bufferedResponse(_ reply: LambdaInvocationReply) async throws -> Response {
        let bytes: [UInt8]
        do {
            bytes = try await reply.collect()
        } catch {
            return plain(.badGateway, "Internal Server Error")
        }
        let object = (try? JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed])) as? [String: Any]
        guard let object, let status = object["statusCode"] as? Int else {
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
        }
        guard validStatus.contains(status) else { return plain(.badGateway, "Internal Server Error") }
        var headers = fields(object)
        if headers[.contentType] == nil { headers[.contentType] = "application/json" }
        let text = object["body"] as? String ?? ""
        let body: [UInt8] = (object["isBase64Encoded"] as? Bool == true) ? Array(Data(base64Encoded: text) ?? Data()) : Array(text.utf8)
        return Response(status: .init(code: status), headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }

    static func plain(_ status: HTTPResponse.Status, _ message: String) -> Response {
        let object: [String: Any] = ["Message": message]
        return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: LambdaEvents.json(object))))
    }
}
