import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// A small HTTP exchange used by the credential sources that call an endpoint.
struct CredentialHTTP: Sendable {
    let client: HTTPClient
    let timeout: TimeAmount

    struct Response {
        var status: Int
        var body: String
    }

    /// Sends a request and reads at most 64 KiB of the answer.
    func send(source: String, method: HTTPMethod, url: String, headers: [(String, String)] = [], body: String? = nil) async throws(AWSCredentialError) -> Response {
        var request = HTTPClientRequest(url: url)
        request.method = method
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body { request.body = .bytes(ByteBuffer(string: body)) }
        do {
            let response = try await client.execute(request, timeout: timeout)
            let buffer = try await response.body.collect(upTo: 64 * 1024)
            return Response(status: Int(response.status.code), body: String(buffer: buffer))
        } catch {
            throw .unreachable(source: source, reason: Self.reason(error))
        }
    }

    /// A reason without URLs or headers (those could carry tokens).
    static func reason(_ error: any Error) -> String {
        if let error = error as? HTTPClientError {
            switch error {
            case .deadlineExceeded, .readTimeout, .connectTimeout: return "timed out"
            case .cancelled: return "cancelled"
            default: return "connection failed"
            }
        }
        if error is CancellationError { return "cancelled" }
        if error is NIOTooManyBytesError { return "answer too large" }
        return "connection failed"
    }

    /// Parses the JSON credentials document the container and instance metadata endpoints return
    /// (`AccessKeyId`, `SecretAccessKey`, `Token`, `Expiration` in ISO 8601).
    static func parseCredentialsJSON(_ body: String, source: String) throws(AWSCredentialError) -> AWSCredentialIdentity {
        guard let object = (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any] else {
            throw .invalid(source: source, reason: "the answer is not a JSON object")
        }
        if let code = object["Code"] as? String, code != "Success" {
            throw .invalid(source: source, reason: "the answer's Code is \(code)")
        }
        guard let id = object["AccessKeyId"] as? String, !id.isEmpty,
              let secret = object["SecretAccessKey"] as? String, !secret.isEmpty
        else { throw .invalid(source: source, reason: "the answer lacks AccessKeyId or SecretAccessKey") }
        var expiration: Date?
        if let raw = object["Expiration"] as? String {
            guard let date = parseISO8601(raw) else { throw .invalid(source: source, reason: "Expiration is not an ISO 8601 date") }
            expiration = date
        }
        let token = (object["Token"] as? String).flatMap { $0.isEmpty ? nil : $0 }
        return AWSCredentialIdentity(credentials: SigV4Credentials(accessKeyID: id, secretAccessKey: secret, sessionToken: token), expiration: expiration, source: source)
    }

    /// `2024-01-01T00:00:00Z`, with or without fractional seconds.
    static func parseISO8601(_ text: String) -> Date? {
        let plain = ISO8601DateFormatter()
        if let date = plain.date(from: text) { return date }
        let fractional = ISO8601DateFormatter()
        fractional.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return fractional.date(from: text)
    }
}
