import Foundation
import MedViewAWS
import MedViewTestSupport
import NIOCore
import Testing

@testable import MedViewLambda

/// The event shapes, the SSE prelude and the Management API client, without a database.
@Suite(.timeLimit(.minutes(1)))
struct GatewayUnitTests {
    static let credentials: @Sendable () async throws -> SigV4Credentials = { SigV4Credentials(accessKeyID: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY") }

    @Test func eventsAreToldApartByTheirShape() throws {
        let connect = #"""
        {"headers":{"Sec-WebSocket-Protocol":"medview.v1, medview.bearer.abc"},"multiValueHeaders":{"Sec-WebSocket-Protocol":["medview.v1, medview.bearer.abc"]},
         "requestContext":{"routeKey":"$connect","eventType":"CONNECT","connectionId":"R1kmxc2VNjMCFIA=","domainName":"abc.execute-api.eu-west-1.amazonaws.com","stage":"dev","identity":{"sourceIp":"203.0.113.9"}},"isBase64Encoded":false}
        """#
        guard case .webSocket(let ws) = try LambdaEvent.decode(Data(connect.utf8)) else { Issue.record("not a WebSocket event"); return }
        #expect(ws.requestContext.routeKey == "$connect")
        #expect(ws.headerValues("sec-websocket-protocol") == ["medview.v1, medview.bearer.abc"])
        #expect(MedViewFunction.endpoint(of: ws)?.absoluteString == "https://abc.execute-api.eu-west-1.amazonaws.com/dev")

        let message = #"{"requestContext":{"routeKey":"$default","eventType":"MESSAGE","connectionId":"c1","messageId":"m"},"body":"{\"type\":\"ping\",\"id\":\"p\"}","isBase64Encoded":false}"#
        guard case .webSocket(let m) = try LambdaEvent.decode(Data(message.utf8)) else { Issue.record("not a WebSocket event"); return }
        #expect(m.messageData == Data(#"{"type":"ping","id":"p"}"#.utf8))

        let url = #"""
        {"version":"2.0","routeKey":"$default","rawPath":"/v1/streams/s_1","rawQueryString":"after=3","headers":{"last-event-id":"4","accept":"text/event-stream"},
         "requestContext":{"http":{"method":"GET","path":"/v1/streams/s_1","sourceIp":"203.0.113.9"},"requestId":"r"},"isBase64Encoded":false}
        """#
        guard case .functionURL(let f) = try LambdaEvent.decode(Data(url.utf8)) else { Issue.record("not a function URL event"); return }
        #expect(f.header("Last-Event-ID") == "4")
        #expect(f.query("after") == "3")
        #expect(f.requestContext.http.method == "GET")

        #expect(throws: LambdaEvent.Unrecognised.self) { _ = try LambdaEvent.decode(Data(#"{"Records":[]}"#.utf8)) }
        #expect(throws: LambdaEvent.Unrecognised.self) { _ = try LambdaEvent.decode(Data("not json".utf8)) }
    }

    @Test func thePreludeIsJSONThenEightNULBytes() throws {
        let prelude = FunctionURLRoutes.prelude(status: 200, headers: ["content-type": "text/event-stream"])
        let bytes = Array(prelude.readableBytesView)
        #expect(bytes.suffix(8) == [UInt8](repeating: 0, count: 8))
        let json = try #require(try JSONSerialization.jsonObject(with: Data(bytes.dropLast(8))) as? [String: Any])
        #expect(json["statusCode"] as? Int == 200)
        #expect((json["headers"] as? [String: String])?["content-type"] == "text/event-stream")
        #expect((json["cookies"] as? [String]) == [])
    }

    @Test func aPostIsSignedForExecuteAPIAndItsConnectionIdEncoded() async throws {
        try await LoopbackHTTPServer.with([.init(200, "")]) { server in
            let api = ManagementAPI(endpoint: URL(string: "\(server.baseURL)/dev")!, region: "eu-west-1", credentials: Self.credentials)
            let delivery = try await api.post(connectionId: "R1kmxc2VNjMCFIA=", Data(#"{"type":"ack"}"#.utf8))
            #expect(delivery == .delivered)
            let request = try #require(server.requests.first)
            #expect(request.method == "POST")
            #expect(request.uri == "/dev/@connections/R1kmxc2VNjMCFIA%3D")
            #expect(request.text == #"{"type":"ack"}"#)
            let authorization = try #require(request.header("Authorization"))
            #expect(authorization.hasPrefix("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"))
            #expect(authorization.contains("/eu-west-1/execute-api/aws4_request"))
            #expect(request.header("X-Amz-Date") != nil)
        }
    }

    @Test func goneEndsDeliveryAndThrottlingIsRetried() async throws {
        try await LoopbackHTTPServer.with([.init(429, #"{"message":"LimitExceeded"}"#), .init(429, ""), .init(200, ""), .init(410, "")]) { server in
            let api = ManagementAPI(endpoint: URL(string: "\(server.baseURL)/dev")!, region: "eu-west-1", credentials: Self.credentials, backoffBase: .milliseconds(5))
            let first = try await api.post(connectionId: "c1", Data("x".utf8))
            #expect(first == .delivered)
            #expect(server.requests.count == 3)
            let second = try await api.post(connectionId: "c1", Data("y".utf8))
            #expect(second == .gone)
        }
    }

    @Test func aMessageOverTheLimitIsNotSent() async throws {
        try await LoopbackHTTPServer.with([.init(200, "")]) { server in
            let api = ManagementAPI(endpoint: URL(string: "\(server.baseURL)/dev")!, region: "eu-west-1", credentials: Self.credentials)
            await #expect(throws: ManagementAPIError.payloadTooLarge(bytes: 131_073)) {
                _ = try await api.post(connectionId: "c1", Data(repeating: 0x61, count: 131_073))
            }
            #expect(server.requests.isEmpty)
        }
    }

    @Test func settingsComeFromTheEnvironment() throws {
        #expect(throws: LambdaSettings.Invalid.self) { _ = try LambdaSettings.resolve(environment: [:]) }
        let settings = try LambdaSettings.resolve(environment: [
            "AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001", "AWS_REGION": "eu-west-1",
            "MEDVIEW_WS_MANAGEMENT_ENDPOINT": "https://abc.execute-api.eu-west-1.amazonaws.com/prod",
            "MEDVIEW_LAMBDA_DEADLINE_MARGIN_MS": "1500",
        ])
        #expect(settings.runtimeAPI == "127.0.0.1:9001")
        #expect(settings.region == "eu-west-1")
        #expect(settings.managementEndpoint?.absoluteString == "https://abc.execute-api.eu-west-1.amazonaws.com/prod")
        #expect(settings.deadlineMargin == .milliseconds(1500))
        #expect(settings.allowSQLite == false)
        #expect(throws: LambdaSettings.Invalid.self) { _ = try LambdaSettings.resolve(environment: ["AWS_LAMBDA_RUNTIME_API": "x:1", "MEDVIEW_WS_MANAGEMENT_ENDPOINT": "ftp://x"]) }
    }
}
