import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

extension LambdaStandIn {
    /// The Management API (`apigatewaymanagementapi` 2018-11-29) at `/{stage}/@connections/{id}`:
    /// `POST` queues the raw body as one message (200), `GET` describes the connection (200),
    /// `DELETE` closes it (204). Every request must carry a SigV4 signature for `execute-api`
    /// with ``LambdaStandInConfiguration/credentials``.
    ///
    /// Errors carry `x-amzn-ErrorType` and `{"message": …}`, from which botocore raises its modeled
    /// exceptions: 410 `GoneException` (closed or unknown connection), 413
    /// `PayloadTooLargeException` (over ``LambdaStandInConfiguration/messageSizeLimit``), 429
    /// `LimitExceededException` (the connection's send buffer is full), 403 `ForbiddenException`
    /// (not a Management API path) and 403 with the signature error's code.
    func manage(_ request: Request, context: StandInRequestContext) async throws -> Response {
        let rawPath = request.uri.path
        let segments = rawPath.split(separator: "/", omittingEmptySubsequences: false).map { String($0).removingPercentEncoding ?? String($0) }
        guard segments.count == 4, segments[0].isEmpty, segments[1] == configuration.stage, segments[2] == "@connections",
              !segments[3].isEmpty
        else {
            return Self.managementError(.forbidden, "ForbiddenException", "Forbidden")
        }
        let connectionID = segments[3]
        let body: [UInt8]
        do {
            body = Array(buffer: try await request.body.collect(upTo: configuration.messageSizeLimit))
        } catch {
            return Self.managementError(.contentTooLarge, "PayloadTooLargeException", "Message too long")
        }
        var headers: [(name: String, value: String)] = []
        if let authority = request.head.authority { headers.append(("host", authority)) }
        for field in request.headers { headers.append((field.name.rawName, field.value)) }
        do throws(SigV4Verifier.Failure) {
            _ = try SigV4Verifier(credentials: configuration.credentials, service: "execute-api")
                .verify(method: request.method.rawValue, path: rawPath, query: request.uri.query, headers: headers, body: body)
        } catch {
            logger.info("lambda.management.signature_rejected", metadata: ["error.code": "\(error.code)"])
            return Self.managementError(.forbidden, error.code, error.message)
        }
        let connection = connections.withLock { $0[connectionID] }
        guard let connection, !connection.isClosed else {
            return Self.managementError(.gone, "GoneException", nil)
        }
        switch request.method {
        case .post:
            do throws(APIGatewayConnection.SendRefusal) {
                try connection.send(body)
            } catch .gone {
                return Self.managementError(.gone, "GoneException", nil)
            } catch .bufferFull {
                return Self.managementError(.tooManyRequests, "LimitExceededException", "The client side buffer is full.")
            }
            logger.debug("lambda.management.posted", metadata: ["connection.id": "\(connectionID)", "message.bytes": "\(body.count)"])
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: "{}")))
        case .get:
            var identity: [String: Any] = ["sourceIp": connection.sourceIP]
            if let userAgent = connection.userAgent { identity["userAgent"] = userAgent }
            let description: [String: Any] = [
                "connectedAt": Self.iso8601(connection.connectedAt),
                "lastActiveAt": Self.iso8601(connection.lastActiveAt),
                "identity": identity,
            ]
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: LambdaEvents.json(description))))
        case .delete:
            connection.close(code: 1000, reason: "")
            logger.info("lambda.management.deleted", metadata: ["connection.id": "\(connectionID)"])
            return Response(status: .noContent)
        default:
            return Self.managementError(.forbidden, "ForbiddenException", "Forbidden")
        }
    }

    /// An error as API Gateway sends it: `x-amzn-ErrorType` (what botocore reads the code from)
    /// and `{"message": …}`.
    static func managementError(_ status: HTTPResponse.Status, _ code: String, _ message: String?) -> Response {
        let object: [String: Any] = ["message": message ?? NSNull()]
        return Response(
            status: status,
            headers: [.contentType: "application/json", HTTPField.Name("x-amzn-ErrorType")!: code, HTTPField.Name("x-amzn-RequestId")!: UUID().uuidString.lowercased()],
            body: .init(byteBuffer: ByteBuffer(bytes: LambdaEvents.json(object)))
        )
    }

    /// `2026-12-05T00:12:00.000Z`.
    static func iso8601(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }
}
