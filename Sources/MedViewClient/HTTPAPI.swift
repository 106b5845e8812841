import AsyncHTTPClient
import Foundation
import MedViewProtocol
import NIOCore
import NIOHTTP1

/// The HTTP half of the protocol: REST calls and the SSE transport's requests.
struct HTTPAPI: Sendable {
    let client: HTTPClient
    let baseURL: String
    /// How long a plain REST call may take.
    var requestTimeout: TimeAmount = .seconds(15)

    /// A response whose body is an event stream, read as it arrives.
    struct EventStreamResponse: Sendable {
        var streamId: String?
        var body: HTTPClientResponse.Body
    }

    private static let decoder: JSONDecoder = {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return decoder
    }()

    private func makeRequest(_ path: String, method: HTTPMethod, token: AccessToken?, json: Data? = nil, accept: String = "application/json") -> HTTPClientRequest {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = method
        request.headers.add(name: "Accept", value: accept)
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token.value)") }
        if let json {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: json))
        }
        return request
    }

    private func call(_ request: HTTPClientRequest, expect: Set<UInt>) async throws -> Data {
        let response = try await client.execute(request, timeout: requestTimeout)
        let body = try await response.body.collect(upTo: 8 << 20)
        let data = Data(body.readableBytesView)
        guard expect.contains(response.status.code) else {
            throw EventDecoding.httpError(status: Int(response.status.code), body: data)
        }
        return data
    }

    private func decode<T: Decodable>(_ type: T.Type, _ data: Data) throws -> T {
        do {
            return try Self.decoder.decode(T.self, from: data)
        } catch {
            throw MedViewClientError.invalidResponse("a response body that could not be read")
        }
    }

    /// Whether the server answers HTTP at all (any status counts). A failure is tried once more
    /// after a moment: right after a drop, the first attempt can land on a pooled keep-alive
    /// connection that the same drop closed but that the pool has not noticed yet.
    func reachable() async -> Bool {
        for attempt in 0..<2 {
            do {
                let response = try await client.execute(HTTPClientRequest(url: baseURL + "/healthz"), timeout: .seconds(5))
                _ = try? await response.body.collect(upTo: 1 << 16)
                return true
            } catch {
                if attempt == 0 { try? await Task.sleep(for: .milliseconds(100)) }
            }
        }
        return false
    }

    func listConversations(token: AccessToken) async throws -> [ConversationSummary] {
        struct Body: Decodable { var conversations: [ConversationSummary] }
        return try decode(Body.self, try await call(makeRequest("/v1/conversations", method: .GET, token: token), expect: [200])).conversations
    }

    func createConversation(title: String?, token: AccessToken) async throws -> ConversationSummary {
        let body = try JSONSerialization.data(withJSONObject: title.map { ["title": $0] } ?? [:])
        return try decode(ConversationSummary.self, try await call(makeRequest("/v1/conversations", method: .POST, token: token, json: body), expect: [201, 200]))
    }

    func messages(conversationId: String, token: AccessToken) async throws -> [StoredMessage] {
        struct Body: Decodable { var messages: [StoredMessage] }
        let path = "/v1/conversations/\(Self.escape(conversationId))/messages"
        return try decode(Body.self, try await call(makeRequest(path, method: .GET, token: token), expect: [200])).messages
    }

    func cancel(streamId: String, token: AccessToken) async throws {
        _ = try await call(makeRequest("/v1/streams/\(Self.escape(streamId))/cancel", method: .POST, token: token), expect: [202, 200, 204])
    }

    /// `POST /v1/conversations/{id}/messages`: the message's answer as an event stream.
    func postMessage(conversationId: String, id: String, text: String, token: AccessToken, deadline: NIODeadline) async throws -> EventStreamResponse {
        let body = try JSONSerialization.data(withJSONObject: ["id": id, "text": text])
        let request = makeRequest("/v1/conversations/\(Self.escape(conversationId))/messages", method: .POST, token: token, json: body, accept: "text/event-stream")
        return try await openStream(request, deadline: deadline)
    }

    /// `GET /v1/streams/{id}` with `Last-Event-ID`: the rest of a stream as an event stream.
    func resume(streamId: String, after: Int, token: AccessToken, deadline: NIODeadline) async throws -> EventStreamResponse {
        var request = makeRequest("/v1/streams/\(Self.escape(streamId))", method: .GET, token: token, accept: "text/event-stream")
        request.headers.add(name: "Last-Event-ID", value: String(after))
        return try await openStream(request, deadline: deadline)
    }

    private func openStream(_ request: HTTPClientRequest, deadline: NIODeadline) async throws -> EventStreamResponse {
        let response = try await client.execute(request, deadline: deadline)
        guard response.status == .ok else {
            let body = (try? await response.body.collect(upTo: 1 << 16)).map { Data($0.readableBytesView) } ?? Data()
            throw EventDecoding.httpError(status: Int(response.status.code), body: body)
        }
        return EventStreamResponse(streamId: response.headers.first(name: "X-Stream-Id"), body: response.body)
    }

    /// A development token for `user` from a server in development mode (`POST /v1/dev/token`).
    func developmentToken(user: String) async throws -> AccessToken {
        struct Body: Decodable {
            var token: String
            var expiresAt: Double
        }
        let json = try JSONSerialization.data(withJSONObject: ["user": user])
        let body = try decode(Body.self, try await call(makeRequest("/v1/dev/token", method: .POST, token: nil, json: json), expect: [200]))
        return AccessToken(body.token, expiresAt: Date(timeIntervalSince1970: body.expiresAt))
    }

    /// Percent-encodes an id for use as one path segment.
    static func escape(_ segment: String) -> String {
        var allowed = CharacterSet.urlPathAllowed
        allowed.remove(charactersIn: "/?#")
        return segment.addingPercentEncoding(withAllowedCharacters: allowed) ?? segment
    }
}
