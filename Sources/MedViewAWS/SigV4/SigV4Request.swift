import Foundation

/// An HTTP request as SigV4 sees it: method, path, query, ordered headers and payload.
///
/// - `path` is the path exactly as it goes in the request target (before any `?`). For most
///   services (Bedrock included) the signer URI-encodes it once more to form the canonical URI,
///   so a model id written `anthropic.claude-v1%3A0` in the path appears as
///   `anthropic.claude-v1%253A0` in the canonical request.
/// - `query` holds decoded names and values in send order; ``encodedQuery`` is their RFC 3986
///   form, which is both what goes on the wire and what the canonical query string sorts.
/// - `headers` are ordered name/value pairs; a name may repeat.
public struct SigV4Request: Sendable, Hashable {
    /// One header line.
    public struct Header: Sendable, Hashable {
        /// The name, in any case.
        public var name: String
        /// The value as sent.
        public var value: String

        /// A header `name: value`.
        public init(_ name: String, _ value: String) {
            self.name = name
            self.value = value
        }
    }

    /// One query parameter, decoded (not percent-encoded).
    public struct QueryItem: Sendable, Hashable {
        /// The decoded name.
        public var name: String
        /// The decoded value (`""` for `?flag` and `?flag=`).
        public var value: String

        /// A parameter `name=value`.
        public init(_ name: String, _ value: String) {
            self.name = name
            self.value = value
        }
    }

    /// What the signature says about the body.
    public enum Payload: Sendable, Hashable {
        /// The body bytes; the signer hashes them with SHA-256.
        case bytes([UInt8])
        /// The lowercase hex SHA-256 of the body, computed by the caller (large or streamed bodies).
        case sha256(String)
        /// `UNSIGNED-PAYLOAD`: the body is not covered by the signature (S3 presigned URLs).
        case unsigned
    }

    /// The HTTP method (upper-cased in the canonical request).
    public var method: String
    /// The path as written in the request target, without the query.
    public var path: String
    /// The decoded query parameters, in send order.
    public var query: [QueryItem]
    /// The headers in send order; must include `Host`.
    public var headers: [Header]
    /// The body, or its hash.
    public var payload: Payload

    /// A request from its parts.
    public init(method: String, path: String, query: [QueryItem] = [], headers: [Header], payload: Payload = .bytes([])) {
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.payload = payload
    }

    /// A request for `url`: the path and query are taken as they appear in the URL (the query is
    /// percent-decoded into ``query``; `+` stays a plus sign), and a `Host` header is added from
    /// the URL unless `headers` already has one (with the port unless it is the scheme's default).
    ///
    /// - Throws: ``SigV4Error/invalidURL(_:)`` if the URL has no host or a query part is not
    ///   valid percent-encoded UTF-8.
    public init(method: String, url: URL, headers: [Header] = [], payload: Payload = .bytes([])) throws(SigV4Error) {
        guard let components = URLComponents(url: url, resolvingAgainstBaseURL: false),
              let host = components.percentEncodedHost, !host.isEmpty
        else { throw .invalidURL(url.absoluteString) }
        var query: [QueryItem] = []
        if let raw = components.percentEncodedQuery {
            for piece in raw.split(separator: "&", omittingEmptySubsequences: true) {
                let parts = piece.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                guard let name = String(parts[0]).removingPercentEncoding,
                      let value = parts.count > 1 ? String(parts[1]).removingPercentEncoding : ""
                else { throw .invalidURL(url.absoluteString) }
                query.append(QueryItem(name, value))
            }
        }
        var headers = headers
        if !headers.contains(where: { $0.name.lowercased() == "host" }) {
            var authority = host
            if let port = components.port, port != Self.defaultPort(scheme: components.scheme) {
                authority += ":\(port)"
            }
            headers.insert(Header("Host", authority), at: 0)
        }
        let path = components.percentEncodedPath
        self.init(method: method, path: path.isEmpty ? "/" : path, query: query, headers: headers, payload: payload)
    }

    /// The query in RFC 3986 form, in send order (`name=value` joined by `&`); empty if none.
    public var encodedQuery: String {
        query.map { SigV4Canonical.uriEncode($0.name) + "=" + SigV4Canonical.uriEncode($0.value) }.joined(separator: "&")
    }

    /// The request target to send: ``path``, then `?` and ``encodedQuery`` if there is a query.
    public var target: String {
        query.isEmpty ? path : path + "?" + encodedQuery
    }

    /// The values of every header called `name` (any case), in order.
    public func headerValues(_ name: String) -> [String] {
        let lower = name.lowercased()
        return headers.filter { $0.name.lowercased() == lower }.map(\.value)
    }

    /// Removes every header called `name` (any case).
    public mutating func removeHeaders(_ name: String) {
        let lower = name.lowercased()
        headers.removeAll { $0.name.lowercased() == lower }
    }

    private static func defaultPort(scheme: String?) -> Int? {
        switch scheme?.lowercased() {
        case "https": 443
        case "http": 80
        default: nil
        }
    }
}
