import Foundation
import Logging
import MedViewCore
import MedViewProtocol
import MedViewServer
import NIOCore

/// The SSE fallback behind a function URL in RESPONSE_STREAM mode: the same endpoints and events
/// as `medview serve` (docs/PROTOCOL.md), answered as a streaming response that starts with the
/// HTTP-integration prelude (status and headers as JSON, then 8 NUL bytes).
///
/// - `POST /v1/conversations/{id}/messages` (`Accept: text/event-stream`, body `{"id","text"}`):
///   starts an answer, streamed as SSE from its `ack`.
/// - `GET /v1/streams/{id}` with `Last-Event-ID` (or `?after=`): resumes after that event.
/// - `POST /v1/streams/{id}/cancel`: 202.
struct FunctionURLRoutes: Sendable {
    /// The content type of a streamed reply with the HTTP-integration prelude.
    static let preludeContentType = "application/vnd.awslambda.http-integration-response"

    let chat: ChatService
    let verifier: any TokenVerifier
    let limits: ServerConfiguration.Limits
    let audit: any AuditSink
    let metrics: ServerMetrics
    let deadlineMargin: Duration
    let logger: Logger

    /// What the route decided: an error to answer with, or a stream to send.
    private enum Outcome {
        case error(APIError)
        case accepted
        case stream(ResponseStream, after: Int, prelude: [ServerEvent], owned: Bool)
    }

    func handle(_ event: FunctionURLEvent, context: LambdaInvocationContext, responder: LambdaResponder) async throws {
        let outcome = await route(event)
        let stopAt = context.deadline - deadlineMargin.timeInterval
        try await responder.stream(contentType: Self.preludeContentType) { writer in
            switch outcome {
            case .error(let error):
                var headers = ["content-type": "application/json; charset=utf-8", "cache-control": "no-store"]
                if error.code == .unauthorized || error.code == .tokenExpired { headers["www-authenticate"] = "Bearer" }
                if let retryAfter = error.retryAfter { headers["retry-after"] = String(retryAfter) }
                try await writer.write(Self.prelude(status: error.code.httpStatus, headers: headers))
                try await writer.write(ByteBuffer(data: error.errorBody))
            case .accepted:
                try await writer.write(Self.prelude(status: 202, headers: [:]))
            case .stream(let stream, let after, let prelude, let owned):
                var headers: [String: String] = [:]
                for field in SSE.headers { headers[field.name.canonicalName] = field.value }
                headers["x-stream-id"] = stream.id
                metrics.connectionAttempt(.sse, .accepted)
                try await writer.write(Self.prelude(status: 200, headers: headers))
                var head = "retry: 2000\n\n"
                for event in prelude { head += SSE.frame(event) }
                try await writer.write(head)
                let delivery = Delivery(chat: chat, stream: stream, owned: owned, stopAt: stopAt, keepAlive: limits.keepAliveInterval)
                _ = await delivery.run(after: after, send: { event in
                    (try? await writer.write(SSE.frame(event))) != nil
                }, idle: {
                    (try? await writer.write(": keep-alive\n\n")) != nil
                })
            }
        }
    }

    /// The prelude of an HTTP-integration streamed reply: `{"statusCode","headers","cookies"}`
    /// then 8 NUL bytes.
    static func prelude(status: Int, headers: [String: String]) -> ByteBuffer {
        struct Prelude: Encodable {
            var statusCode: Int
            var headers: [String: String]
            var cookies: [String] = []
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var buffer = ByteBuffer(bytes: (try? encoder.encode(Prelude(statusCode: status, headers: headers))) ?? Data())
        buffer.writeRepeatingByte(0, count: 8)
        return buffer
    }

    private func route(_ event: FunctionURLEvent) async -> Outcome {
        let method = event.requestContext.http.method.uppercased()
        let parts = event.rawPath.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        let identity: VerifiedIdentity
        do throws(AuthError) {
            guard let token = UpgradeCredentials(authorization: event.header("authorization"), subprotocolHeaders: []).token else { throw .missing }
            identity = try await verifier.verify(token)
        } catch {
            audit.record(AuditEvent(action: .signInRefused, sourceAddress: event.requestContext.http.sourceIp, outcome: .refused, reason: error.errorCode.rawValue))
            return .error(APIError(error.errorCode, error.message))
        }
        let user = identity.userId
        let source = event.requestContext.http.sourceIp
        switch (method, parts.count) {
        case ("POST", 4) where parts[0] == "v1" && parts[1] == "conversations" && parts[3] == "messages":
            return await send(event, user: user, conversationId: parts[2], source: source)
        case ("GET", 3) where parts[0] == "v1" && parts[1] == "streams":
            return await resume(event, user: user, streamId: parts[2], source: source)
        case ("POST", 4) where parts[0] == "v1" && parts[1] == "streams" && parts[3] == "cancel":
            do {
                try await chat.cancel(streamId: parts[2], userId: user)
                audit.record(AuditEvent(action: .streamCancelled, userId: user, sourceAddress: source, record: parts[2]))
                return .accepted
            } catch {
                return .error(APIError(error))
            }
        default:
            return .error(APIError(.notFound, "No such endpoint on this function URL (the SSE endpoints only)."))
        }
    }

    private func send(_ event: FunctionURLEvent, user: String, conversationId: String, source: String?) async -> Outcome {
        guard event.header("accept")?.contains("text/event-stream") == true else {
            return .error(APIError(.notAcceptable, "This endpoint answers with `Accept: text/event-stream` only."))
        }
        let data = event.bodyData
        guard data.count <= limits.maxFrameBytes else {
            return .error(APIError(.frameTooLarge, "The request body is larger than \(limits.maxFrameBytes) bytes."))
        }
        guard String(validating: data, as: UTF8.self) != nil else { return .error(APIError(.invalidUTF8, "The body is not valid UTF-8.")) }
        struct SendBody: Decodable {
            var id: String
            var text: String
        }
        let body: SendBody
        do {
            body = try decodeWireBody(SendBody.self, from: data)
        } catch {
            return .error(APIError(error.code, error.message))
        }
        guard !body.id.isEmpty, body.id.count <= ProtocolLimits.maxCommandIdLength else {
            return .error(APIError(.invalidCommand, "`id` must be 1 to \(ProtocolLimits.maxCommandIdLength) characters."))
        }
        do {
            let result = try await chat.send(userId: user, conversationId: conversationId, clientMessageId: body.id, text: body.text)
            audit.record(AuditEvent(action: .messageSent, userId: user, sourceAddress: source, record: result.conversationId))
            let ack = ServerEvent.ack(Ack(id: body.id, streamId: result.stream.id, conversationId: result.conversationId, duplicate: result.duplicate ? true : nil))
            return .stream(result.stream, after: 0, prelude: [ack], owned: !result.duplicate)
        } catch {
            metrics.error(error.code.rawValue)
            audit.record(AuditEvent(action: .messageSent, userId: user, sourceAddress: source, record: conversationId, outcome: error.code.httpStatus >= 500 ? .failed : .refused, reason: error.code.rawValue))
            return .error(APIError(error))
        }
    }

    private func resume(_ event: FunctionURLEvent, user: String, streamId: String, source: String?) async -> Outcome {
        guard event.header("accept")?.contains("text/event-stream") == true else {
            return .error(APIError(.notAcceptable, "This endpoint answers with `Accept: text/event-stream` only."))
        }
        var after = 0
        if let header = event.header("last-event-id") {
            guard let n = Int(header.trimmingCharacters(in: .whitespaces)), n >= 0 else {
                return .error(APIError(.invalidCommand, "Last-Event-ID must be a sequence number."))
            }
            after = n
        } else if let query = event.query("after") {
            guard let n = Int(query), n >= 0 else { return .error(APIError(.invalidCommand, "`after` must be 0 or more.")) }
            after = n
        }
        do {
            let stream = try await chat.stream(id: streamId, userId: user)
            audit.record(AuditEvent(action: .streamResumed, userId: user, sourceAddress: source, record: stream.id))
            return .stream(stream, after: after, prelude: [], owned: false)
        } catch {
            return .error(APIError(error))
        }
    }
}
