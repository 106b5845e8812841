import AsyncHTTPClient
import Foundation
import Logging
import MedViewAWS
import NIOCore
import NIOHTTP1

/// Why a post to a WebSocket connection failed.
public enum ManagementAPIError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The message is over API Gateway's 128 KB limit (it is not sent).
    case payloadTooLarge(bytes: Int)
    /// Still throttled (429) after every retry.
    case throttled
    /// The credentials could not be had or the request not signed.
    case signing(String)
    /// API Gateway answered with another status (403: the role may not post).
    case status(Int)
    /// API Gateway could not be reached.
    case unreachable

    public var description: String {
        switch self {
        case .payloadTooLarge(let bytes): "a message of \(bytes) bytes is over the 131072-byte limit of API Gateway"
        case .throttled: "API Gateway kept answering 429 (LimitExceeded)"
        case .signing(let detail): "could not sign the Management API request: \(detail)"
        case .status(let status): "API Gateway's Management API answered HTTP \(status)"
        case .unreachable: "API Gateway's Management API is unreachable"
        }
    }
}

/// The API Gateway Management API of one WebSocket stage: `POST /@connections/{id}` (send a
/// message), `DELETE` (close), signed with SigV4 as service `execute-api`.
public struct ManagementAPI: Sendable {
    /// The largest message API Gateway takes (botocore's model: 131072 bytes).
    public static let maxMessageBytes = 131_072

    /// What a post achieved.
    public enum Delivery: Sendable, Equatable {
        case delivered
        /// 410 Gone: the client has disconnected; nothing more can reach it on this connection.
        case gone
    }

    /// `https://{api-id}.execute-api.{region}.amazonaws.com/{stage}` (or a stand-in's).
    public let endpoint: URL
    public let region: String
    let credentials: @Sendable () async throws -> SigV4Credentials
    let httpClient: HTTPClient
    /// Retries of a throttled post, with exponential backoff and full jitter from ``backoffBase``.
    let maxRetries: Int
    let backoffBase: Duration
    let timeout: Duration

    public init(endpoint: URL, region: String, credentials: @escaping @Sendable () async throws -> SigV4Credentials, httpClient: HTTPClient = .shared, maxRetries: Int = 6, backoffBase: Duration = .milliseconds(50), timeout: Duration = .seconds(5)) {
        self.endpoint = endpoint
        self.region = region
        self.credentials = credentials
        self.httpClient = httpClient
        self.maxRetries = maxRetries
        self.backoffBase = backoffBase
        self.timeout = timeout
    }

    /// Sends `data` to connection `id` as one text message. Retries 429s with jittered backoff.
    public func post(connectionId id: String, _ data: Data) async throws(ManagementAPIError) -> Delivery {
        guard data.count <= Self.maxMessageBytes else { throw .payloadTooLarge(bytes: data.count) }
        var attempt = 0
        while true {
            let status = try await send(method: "POST", connectionId: id, body: data)
            switch status {
            case 200..<300: return .delivered
            case 410: return .gone
            case 413: throw .payloadTooLarge(bytes: data.count)
            case 429:
                attempt += 1
                guard attempt <= maxRetries else { throw .throttled }
                // Full jitter: a random wait up to base × 2^attempt, at most 2 s.
                let ceiling = min(backoffBase * (1 << min(attempt, 10)), .seconds(2))
                let wait = Duration.nanoseconds(Int64.random(in: 0...max(1, ceiling.nanoseconds)))
                try? await Task.sleep(for: wait)
            default:
                throw .status(status)
            }
        }
    }

    /// Closes connection `id` (`DELETE`); a connection already gone counts as closed.
    public func close(connectionId id: String) async throws(ManagementAPIError) {
        let status = try await send(method: "DELETE", connectionId: id, body: Data())
        guard (200..<300).contains(status) || status == 410 else { throw .status(status) }
    }

    /// The URL of connection `id`: its id percent-encoded (`=` of a base64 id becomes `%3D`).
    func connectionURL(_ id: String) -> URL? {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        guard let encoded = id.addingPercentEncoding(withAllowedCharacters: allowed) else { return nil }
        var base = endpoint.absoluteString
        while base.hasSuffix("/") { base.removeLast() }
        return URL(string: base + "/@connections/" + encoded)
    }

    private func send(method: String, connectionId: String, body: Data) async throws(ManagementAPIError) -> Int {
        guard let url = connectionURL(connectionId) else { throw .signing("bad connection id") }
        let signed: SigV4SignedRequest
        do {
            let identity = try await credentials()
            let unsigned = try SigV4Request(method: method, url: url, headers: [], payload: .bytes(Array(body)))
            signed = try SigV4Signer(service: "execute-api", region: region).sign(unsigned, credentials: identity, date: Date())
        } catch {
            throw .signing(String(describing: type(of: error)))
        }
        var request = HTTPClientRequest(url: url.absoluteString)
        request.method = HTTPMethod(rawValue: method)
        for header in signed.request.headers { request.headers.add(name: header.name, value: header.value) }
        if !body.isEmpty { request.body = .bytes(ByteBuffer(bytes: body)) }
        do {
            let response = try await httpClient.execute(request, timeout: .nanoseconds(timeout.nanoseconds))
            _ = try? await response.body.collect(upTo: 64 * 1024)
            return Int(response.status.code)
        } catch {
            throw .unreachable
        }
    }
}

extension Duration {
    /// The duration in whole nanoseconds (saturating).
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (product, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        return overflow ? .max : product + attoseconds / 1_000_000_000
    }
}
