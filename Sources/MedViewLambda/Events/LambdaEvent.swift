import Foundation

/// The events this function serves, told apart by their shape.
public enum LambdaEvent: Sendable {
    /// An API Gateway WebSocket route (`$connect`, `$default`, `$disconnect`).
    case webSocket(WebSocketEvent)
    /// A function URL request (payload format 2.0): the SSE fallback.
    case functionURL(FunctionURLEvent)

    /// Why an event was not understood.
    public struct Unrecognised: Error, Sendable, CustomStringConvertible {
        public var description: String { "the event is neither an API Gateway WebSocket event nor a function URL request" }
    }

    /// Decodes `data`: a `requestContext.routeKey` with an `eventType` is a WebSocket event; a
    /// `requestContext.http` is a function URL request.
    public static func decode(_ data: Data) throws(Unrecognised) -> LambdaEvent {
        struct Probe: Decodable {
            struct Context: Decodable {
                var eventType: String?
                var connectionId: String?
                var http: FunctionURLEvent.HTTP?
            }
            var requestContext: Context?
        }
        guard let probe = try? JSONDecoder().decode(Probe.self, from: data), let context = probe.requestContext else {
            throw Unrecognised()
        }
        if context.eventType != nil, context.connectionId != nil, let event = try? JSONDecoder().decode(WebSocketEvent.self, from: data) {
            return .webSocket(event)
        }
        if context.http != nil, let event = try? JSONDecoder().decode(FunctionURLEvent.self, from: data) {
            return .functionURL(event)
        }
        throw Unrecognised()
    }
}

/// An API Gateway WebSocket event (the fields this function reads).
public struct WebSocketEvent: Sendable, Decodable {
    public struct RequestContext: Sendable, Decodable {
        /// `$connect`, `$disconnect`, `$default` (or a custom route).
        public var routeKey: String
        /// `CONNECT`, `DISCONNECT` or `MESSAGE`.
        public var eventType: String
        public var connectionId: String
        public var domainName: String?
        public var stage: String?
        public var requestId: String?
        public var identity: Identity?
        public var disconnectStatusCode: Int?
    }

    public struct Identity: Sendable, Decodable {
        public var sourceIp: String?
    }

    public var requestContext: RequestContext
    /// `$connect` only.
    public var headers: [String: String]?
    /// `$connect` only: every value of each header.
    public var multiValueHeaders: [String: [String]]?
    /// `MESSAGE` only.
    public var body: String?
    public var isBase64Encoded: Bool?

    /// The header `name` (any case): all its values, from `multiValueHeaders` when present.
    public func headerValues(_ name: String) -> [String] {
        let lower = name.lowercased()
        if let multi = multiValueHeaders?.first(where: { $0.key.lowercased() == lower })?.value { return multi }
        if let single = headers?.first(where: { $0.key.lowercased() == lower })?.value { return [single] }
        return []
    }

    /// The message's bytes (decoded from base64 when API Gateway encoded a binary frame).
    public var messageData: Data? {
        guard let body else { return nil }
        if isBase64Encoded == true { return Data(base64Encoded: body) }
        return Data(body.utf8)
    }
}

/// A function URL request, payload format 2.0 (the fields this function reads).
public struct FunctionURLEvent: Sendable, Decodable {
    public struct HTTP: Sendable, Decodable {
        public var method: String
        public var path: String?
        public var sourceIp: String?
    }

    public struct RequestContext: Sendable, Decodable {
        public var http: HTTP
        public var requestId: String?
    }

    public var rawPath: String
    public var rawQueryString: String?
    /// Header names lower-cased; repeated headers joined with commas.
    public var headers: [String: String]?
    public var cookies: [String]?
    public var body: String?
    public var isBase64Encoded: Bool?
    public var requestContext: RequestContext

    /// The header `name` (any case).
    public func header(_ name: String) -> String? {
        let lower = name.lowercased()
        return headers?.first(where: { $0.key.lowercased() == lower })?.value
    }

    /// The value of query parameter `name`, percent-decoded.
    public func query(_ name: String) -> String? {
        guard let raw = rawQueryString, !raw.isEmpty else { return nil }
        for pair in raw.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            if parts[0] == name[...] {
                return parts.count > 1 ? String(parts[1]).replacingOccurrences(of: "+", with: " ").removingPercentEncoding : ""
            }
        }
        return nil
    }

    /// The request body's bytes.
    public var bodyData: Data {
        guard let body else { return Data() }
        if isBase64Encoded == true { return Data(base64Encoded: body) ?? Data() }
        return Data(body.utf8)
    }
}
