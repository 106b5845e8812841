import Foundation
import HTTPTypes
import Hummingbird
import MedViewCore
import MedViewProtocol

/// The `/v1` HTTP routes: conversations (REST) and the SSE transport.
struct APIController {
    let chat: ChatService
    let limits: ServerConfiguration.Limits
    let metrics: ServerMetrics
    /// Times the keep-alives of every SSE response.
    let keepAliveTimer: CoarseTimer

    struct ConversationView: Codable {
        var id: String
        var title: String
        var createdAt: Date
        var updatedAt: Date

        init(_ c: Conversation) {
            id = c.id
            title = c.title
            createdAt = c.createdAt
            updatedAt = c.updatedAt
        }
    }

    struct MessageView: Codable {
        var id: String
        var role: MessageRole
        var text: String
        var status: MessageStatus
        var streamId: String
        var createdAt: Date
    }

    struct SendBody: Decodable {
        var id: String
        var text: String
    }

    struct CreateBody: Decodable {
        var title: String?
    }

    func addRoutes(to group: RouterGroup<AppRequestContext>) {
        group.get("conversations", use: list)
        group.post("conversations", use: create)
        group.get("conversations/:conversationId/messages", use: messages)
        group.delete("conversations/:conversationId", use: delete)
        group.post("conversations/:conversationId/messages", use: send)
        group.get("streams/:streamId", use: resume)
        group.post("streams/:streamId/cancel", use: cancel)
    }

    private func storeCall<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch {
            throw APIError(.storageUnavailable, "Storage is unavailable; try again.")
        }
    }

    @Sendable func list(_ request: Request, context: AppRequestContext) async throws -> Response {
        let user = try context.requireIdentity().userId
        let items = try await storeCall { try await chat.store.conversations(userId: user, limit: 200) }
        struct Body: Encodable { var conversations: [ConversationView] }
        return JSONHelpers.response(Body(conversations: items.map(ConversationView.init)))
    }

    @Sendable func create(_ request: Request, context: AppRequestContext) async throws -> Response {
        let user = try context.requireIdentity().userId
        let data = try await readBody(request)
        var title = "New conversation"
        if !data.isEmpty {
            let body = try decode(CreateBody.self, data)
            do {
                if let given = try TextRules.title(body.title, maxCharacters: 120) { title = given }
            } catch {
                metrics.error(error.code.rawValue)
                throw APIError(error)
            }
        }
        let now = Date()
        let conversation = Conversation(id: Identifier.make("c"), userId: user, title: title, createdAt: now, updatedAt: now)
        try await storeCall { try await chat.store.createConversation(conversation) }
        var response = JSONHelpers.response(ConversationView(conversation), status: .created)
        response.headers[.location] = "/v1/conversations/\(conversation.id)"
        return response
    }

    @Sendable func messages(_ request: Request, context: AppRequestContext) async throws -> Response {
        let user = try context.requireIdentity().userId
        let id = try context.parameters.require("conversationId")
        guard try await storeCall({ try await chat.store.conversation(id: id, userId: user) }) != nil else {
            throw APIError(.notFound, "No such conversation.")
        }
        let items = try await storeCall { try await chat.store.messages(conversationId: id, userId: user) }
        struct Body: Encodable { var conversationId: String; var messages: [MessageView] }
        return JSONHelpers.response(Body(conversationId: id, messages: items.map {
            MessageView(id: $0.id, role: $0.role, text: $0.text, status: $0.status, streamId: $0.streamId, createdAt: $0.createdAt)
        }))
    }

    @Sendable func delete(_ request: Request, context: AppRequestContext) async throws -> Response {
        let user = try context.requireIdentity().userId
        let id = try context.parameters.require("conversationId")
        let deleted: Bool
        do {
            deleted = try await chat.deleteConversation(id: id, userId: user)
        } catch {
            throw APIError(error)
        }
        guard deleted else { throw APIError(.notFound, "No such conversation.") }
        return Response(status: .noContent)
    }

    @Sendable func send(_ request: Request, context: AppRequestContext) async throws -> Response {
        let user = try context.requireIdentity().userId
        try requireEventStream(request)
        let conversationId = try context.parameters.require("conversationId")
        let body = try decode(SendBody.self, try await readBody(request))
        guard !body.id.isEmpty, body.id.count <= ProtocolLimits.maxCommandIdLength else {
            throw APIError(.invalidCommand, "`id` must be 1 to \(ProtocolLimits.maxCommandIdLength) characters.")
        }
        let result: SendResult
        let accepted = ContinuousClock.now
        do {
            result = try await chat.send(userId: user, conversationId: conversationId, clientMessageId: body.id, text: body.text)
        } catch {
            metrics.error(error.code.rawValue)
            throw APIError(error)
        }
        let ack = ServerEvent.ack(Ack(id: body.id, streamId: result.stream.id, conversationId: result.conversationId, duplicate: result.duplicate ? true : nil))
        return streamResponse(result.stream, after: 0, prelude: [ack], acceptedAt: result.duplicate ? nil : accepted)
    }

    @Sendable func resume(_ request: Request, context: AppRequestContext) async throws -> Response {
        let user = try context.requireIdentity().userId
        let streamId = try context.parameters.require("streamId")
        try requireEventStream(request)
        var after = 0
        if let header = request.headers[HTTPField.Name("Last-Event-ID")!] {
            guard let n = Int(header.trimmingCharacters(in: .whitespaces)), n >= 0 else {
                throw APIError(.invalidCommand, "Last-Event-ID must be a sequence number.")
            }
            after = n
        } else if let query = request.uri.queryParameters.get("after") {
            guard let n = Int(query), n >= 0 else { throw APIError(.invalidCommand, "`after` must be 0 or more.") }
            after = n
        }
        let stream: ResponseStream
        do {
            stream = try await chat.stream(id: streamId, userId: user)
        } catch {
            throw APIError(error)
        }
        return streamResponse(stream, after: after, prelude: [])
    }

    @Sendable func cancel(_ request: Request, context: AppRequestContext) async throws -> Response {
        let user = try context.requireIdentity().userId
        let streamId = try context.parameters.require("streamId")
        do {
            try await chat.cancel(streamId: streamId, userId: user)
        } catch {
            throw APIError(error)
        }
        return Response(status: .accepted)
    }

    private func streamResponse(_ stream: ResponseStream, after: Int, prelude: [ServerEvent], acceptedAt: ContinuousClock.Instant? = nil) -> Response {
        var headers = SSE.headers
        headers[HTTPField.Name("X-Stream-Id")!] = stream.id
        metrics.connectionAttempt(.sse, .accepted)
        return Response(status: .ok, headers: headers, body: SSE.body(stream: stream, after: after, prelude: prelude, keepAlive: limits.keepAliveInterval, keepAliveTimer: keepAliveTimer, metrics: metrics, acceptedAt: acceptedAt))
    }

    private func requireEventStream(_ request: Request) throws {
        guard let accept = request.headers[.accept], accept.contains("text/event-stream") else {
            throw APIError(.notAcceptable, "This endpoint answers with `Accept: text/event-stream` only.")
        }
    }

    private func readBody(_ request: Request) async throws -> Data {
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: limits.maxFrameBytes)
        } catch {
            throw APIError(.frameTooLarge, "The request body is larger than \(limits.maxFrameBytes) bytes.")
        }
        return Data(buffer.readableBytesView)
    }

    private func decode<T: Decodable>(_ type: T.Type, _ data: Data) throws -> T {
        guard String(validating: data, as: UTF8.self) != nil else {
            throw APIError(.invalidUTF8, "The body is not valid UTF-8.")
        }
        do {
            return try decodeWireBody(T.self, from: data)
        } catch {
            throw APIError(error.code, error.message)
        }
    }
}
