import Foundation

/// The event payloads the stand-in invokes functions with, shaped as API Gateway and Lambda
/// function URLs send them (aws-lambda-go `events/apigw.go` and `events/lambda_function_urls.go`).
enum LambdaEvents {
    /// What the WebSocket events share about the connection and the API.
    struct WebSocketContext {
        var connectionID: String
        var connectedAt: Date
        var sourceIP: String
        var userAgent: String?
        var stage: String
        var apiID: String
        var domainName: String
    }

    /// The request of a `$connect` (or `$disconnect`): its headers in the case received.
    struct HandshakeRequest {
        var headers: [(name: String, value: String)]
        var query: String?
    }

    /// `$connect`: eventType CONNECT with the handshake's headers and query.
    static func connect(_ context: WebSocketContext, request: HandshakeRequest, now: Date = Date()) -> [UInt8] {
        var event = handshake(request)
        event["requestContext"] = requestContext(context, routeKey: "$connect", eventType: "CONNECT", now: now)
        return json(event)
    }

    /// `$disconnect`: eventType DISCONNECT with the close code and reason.
    static func disconnect(_ context: WebSocketContext, request: HandshakeRequest, statusCode: UInt16, reason: String, now: Date = Date()) -> [UInt8] {
        var event = handshake(HandshakeRequest(headers: request.headers, query: nil))
        event["queryStringParameters"] = nil
        event["multiValueQueryStringParameters"] = nil
        var requestContext = requestContext(context, routeKey: "$disconnect", eventType: "DISCONNECT", now: now)
        requestContext["disconnectStatusCode"] = Int(statusCode)
        requestContext["disconnectReason"] = reason
        event["requestContext"] = requestContext
        return json(event)
    }

    /// `$default`: eventType MESSAGE with the message as `body` (base64 for a binary message).
    static func message(_ context: WebSocketContext, routeKey: String, body: [UInt8], binary: Bool, now: Date = Date()) -> [UInt8] {
        var requestContext = requestContext(context, routeKey: routeKey, eventType: "MESSAGE", now: now)
        requestContext["messageId"] = shortID()
        let text = binary ? nil : String(validating: body, as: UTF8.self)
        return json([
            "requestContext": requestContext,
            "body": text ?? Data(body).base64EncodedString(),
            "isBase64Encoded": text == nil,
        ])
    }

    /// A function URL request (payload format 2.0).
    struct HTTPRequest {
        var method: String
        var rawPath: String
        var rawQuery: String?
        var headers: [(name: String, value: String)]
        var body: [UInt8]
        var sourceIP: String
    }

    /// The function URL event: header names lower-cased, repeated headers joined with `,`,
    /// cookies apart, a textual body as is and any other body in base64.
    static func functionURL(_ request: HTTPRequest, urlID: String, region: String, now: Date = Date()) -> [UInt8] {
        var headers: [String: String] = [:]
        var cookies: [String] = []
        for (name, value) in request.headers {
            let name = name.lowercased()
            if name == "cookie" {
                cookies += value.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
                continue
            }
            headers[name] = headers[name].map { $0 + "," + value } ?? value
        }
        let epoch = Int((now.timeIntervalSince1970 * 1000).rounded())
        var event: [String: Any] = [
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": request.rawPath,
            "rawQueryString": request.rawQuery ?? "",
            "headers": headers,
            "requestContext": [
                "accountId": "anonymous",
                "apiId": urlID,
                "domainName": "\(urlID).lambda-url.\(region).on.aws",
                "domainPrefix": urlID,
                "http": [
                    "method": request.method,
                    "path": request.rawPath.removingPercentEncoding ?? request.rawPath,
                    "protocol": "HTTP/1.1",
                    "sourceIp": request.sourceIP,
                    "userAgent": headers["user-agent"] ?? "",
                ] as [String: Any],
                "requestId": UUID().uuidString.lowercased(),
                "routeKey": "$default",
                "stage": "$default",
                "time": requestTime(now),
                "timeEpoch": epoch,
            ] as [String: Any],
            "isBase64Encoded": false,
        ]
        if !cookies.isEmpty { event["cookies"] = cookies }
        let parameters = queryParameters(request.rawQuery)
        if !parameters.isEmpty {
            event["queryStringParameters"] = parameters.mapValues { $0.joined(separator: ",") }
        }
        if !request.body.isEmpty {
            if isTextual(headers["content-type"]), let text = String(validating: request.body, as: UTF8.self) {
                event["body"] = text
            } else {
                event["body"] = Data(request.body).base64EncodedString()
                event["isBase64Encoded"] = true
            }
        }
        return json(event)
    }

    // MARK: - Parts

    static func handshake(_ request: HandshakeRequest) -> [String: Any] {
        var headers: [String: String] = [:]
        var multi: [String: [String]] = [:]
        for (name, value) in request.headers {
            headers[name] = headers[name].map { $0 + "," + value } ?? value
            multi[name, default: []].append(value)
        }
        var event: [String: Any] = ["headers": headers, "multiValueHeaders": multi, "isBase64Encoded": false]
        let parameters = queryParameters(request.query)
        if !parameters.isEmpty {
            event["queryStringParameters"] = parameters.mapValues { $0.last ?? "" }
            event["multiValueQueryStringParameters"] = parameters
        }
        return event
    }

    static func requestContext(_ context: WebSocketContext, routeKey: String, eventType: String, now: Date) -> [String: Any] {
        var identity: [String: Any] = ["sourceIp": context.sourceIP]
        if let userAgent = context.userAgent { identity["userAgent"] = userAgent }
        return [
            "routeKey": routeKey,
            "eventType": eventType,
            "messageDirection": "IN",
            "extendedRequestId": shortID(),
            "requestId": shortID(),
            "requestTime": requestTime(now),
            "requestTimeEpoch": Int((now.timeIntervalSince1970 * 1000).rounded()),
            "connectedAt": Int((context.connectedAt.timeIntervalSince1970 * 1000).rounded()),
            "connectionId": context.connectionID,
            "domainName": context.domainName,
            "stage": context.stage,
            "apiId": context.apiID,
            "identity": identity,
        ]
    }

    /// Decoded query parameters, in order, values of a repeated name together.
    static func queryParameters(_ query: String?) -> [String: [String]] {
        var result: [String: [String]] = [:]
        for piece in (query ?? "").split(separator: "&") {
            let kv = piece.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map {
                String($0).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String($0)
            }
            guard let name = kv.first, !name.isEmpty else { continue }
            result[name, default: []].append(kv.count > 1 ? kv[1] : "")
        }
        return result
    }

    static func isTextual(_ contentType: String?) -> Bool {
        guard let type = contentType?.lowercased() else { return true }
        return type.hasPrefix("text/") || ["json", "xml", "javascript", "x-www-form-urlencoded"].contains { type.contains($0) }
    }

    /// `dd/MMM/yyyy:HH:mm:ss +0000`, API Gateway's `requestTime`.
    static func requestTime(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "dd/MMM/yyyy:HH:mm:ss Z"
        return formatter.string(from: date)
    }

    /// An id like API Gateway's request and message ids (`IcYkXsQAoAMFnjA=`).
    static func shortID() -> String { APIGatewayConnection.makeID() }

    static func json(_ object: [String: Any]) -> [UInt8] {
        Array((try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8))
    }
}
