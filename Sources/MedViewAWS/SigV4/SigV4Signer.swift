import Crypto
import Foundation

/// AWS Signature Version 4 (`AWS4-HMAC-SHA256`), in the `Authorization` header form
/// (``sign(_:credentials:date:)``) and the query-string form of presigned URLs
/// (``presign(_:credentials:date:expires:)``).
///
/// ```swift
/// let signer = SigV4Signer(service: "bedrock", region: "us-east-1")
/// let request = try SigV4Request(method: "POST", url: url,
///                                headers: [.init("Content-Type", "application/json")],
///                                payload: .bytes(body))
/// let signed = try signer.sign(request, credentials: credentials, date: .now)
/// // send signed.request.headers with signed.request.target
/// ```
///
/// Canonicalization: header names lower-cased and sorted, values trimmed with inner whitespace
/// collapsed, repeated headers joined with `,` in order; query parameters RFC 3986-encoded and
/// sorted by name then value (bytewise); the path normalized and encoded per ``Options``.
public struct SigV4Signer: Sendable {
    /// The per-service variations of SigV4.
    public struct Options: Sendable, Hashable {
        /// Remove `.`/`..` and empty segments from the path before encoding. `false` for S3.
        public var normalizePath: Bool
        /// URI-encode the (already wire-encoded) path once more for the canonical URI: `true` for
        /// every service but S3 (Bedrock's `model/…%3A0/…` becomes `…%253A0…`).
        public var uriEncodePath: Bool
        /// Add and sign `x-amz-content-sha256: <payload hash>` (header form only). S3 needs it.
        public var addContentSHA256Header: Bool
        /// Add the session token after signing, unsigned (a few services want it so).
        public var omitSessionToken: Bool
        /// Lower-case header names never signed: hop-by-hop headers and others proxies change.
        public var unsignedHeaders: Set<String>

        /// Options; the defaults fit Bedrock and most services.
        public init(
            normalizePath: Bool = true,
            uriEncodePath: Bool = true,
            addContentSHA256Header: Bool = false,
            omitSessionToken: Bool = false,
            unsignedHeaders: Set<String> = SigV4Signer.defaultUnsignedHeaders
        ) {
            self.normalizePath = normalizePath
            self.uriEncodePath = uriEncodePath
            self.addContentSHA256Header = addContentSHA256Header
            self.omitSessionToken = omitSessionToken
            self.unsignedHeaders = unsignedHeaders
        }

        /// S3's rules: path neither normalized nor re-encoded, `x-amz-content-sha256` signed.
        public static let s3 = Options(normalizePath: false, uriEncodePath: false, addContentSHA256Header: true)
    }

    /// Headers left out of every signature (the same list botocore uses).
    public static let defaultUnsignedHeaders: Set<String> = [
        "authorization", "connection", "expect", "keep-alive", "proxy-authenticate", "proxy-authorization",
        "te", "trailer", "transfer-encoding", "upgrade", "user-agent", "x-amzn-trace-id",
    ]

    /// The signing algorithm name.
    public static let algorithm = "AWS4-HMAC-SHA256"
    /// The payload hash used for ``SigV4Request/Payload/unsigned``.
    public static let unsignedPayload = "UNSIGNED-PAYLOAD"

    /// The signing name of the service (`bedrock` for Bedrock Runtime, `execute-api`, `s3`…).
    public let service: String
    /// The region (`us-east-1`).
    public let region: String
    /// The service's variations.
    public let options: Options

    /// A signer for `service` in `region`.
    public init(service: String, region: String, options: Options = Options()) {
        self.service = service
        self.region = region
        self.options = options
    }

    /// Signs with an `Authorization` header.
    ///
    /// Replaces any `Authorization` and `X-Amz-Date` headers (and `X-Amz-Security-Token` when
    /// the credentials have a token, `x-amz-content-sha256` when
    /// ``Options/addContentSHA256Header`` is set), then appends, in this order,
    /// `X-Amz-Security-Token`, `X-Amz-Date`, `x-amz-content-sha256` and `Authorization`.
    ///
    /// - Throws: ``SigV4Error/missingHost`` or ``SigV4Error/invalidScope(_:)``.
    public func sign(_ request: SigV4Request, credentials: SigV4Credentials, date: Date) throws(SigV4Error) -> SigV4SignedRequest {
        try checkScope()
        var request = request
        guard request.headers.contains(where: { $0.name.lowercased() == "host" }) else { throw .missingHost }
        let time = AmzDate(date)
        request.removeHeaders("authorization")
        request.removeHeaders("x-amz-date")
        if let token = credentials.sessionToken {
            request.removeHeaders("x-amz-security-token")
            request.headers.append(.init("X-Amz-Security-Token", token))
        }
        request.headers.append(.init("X-Amz-Date", time.timestamp))
        let payloadHash = Self.payloadHash(request.payload)
        if options.addContentSHA256Header {
            request.removeHeaders("x-amz-content-sha256")
            request.headers.append(.init("x-amz-content-sha256", payloadHash))
        }
        var excluded = options.unsignedHeaders
        if options.omitSessionToken { excluded.insert("x-amz-security-token") }
        let (canonical, signedHeaders) = canonicalRequest(request, payloadHash: payloadHash, excluding: excluded)
        let scope = credentialScope(time)
        let stringToSign = Self.stringToSign(canonicalRequest: canonical, timestamp: time.timestamp, scope: scope)
        let signature = signature(stringToSign: stringToSign, secretAccessKey: credentials.secretAccessKey, day: time.day)
        let authorization = "\(Self.algorithm) Credential=\(credentials.accessKeyID)/\(scope), SignedHeaders=\(signedHeaders), Signature=\(signature)"
        request.headers.append(.init("Authorization", authorization))
        return SigV4SignedRequest(
            request: request, canonicalRequest: canonical, stringToSign: stringToSign, signature: signature,
            signedHeaders: signedHeaders, credentialScope: scope, authorization: authorization
        )
    }

    /// Signs in the query string (a presigned URL valid for `expires` seconds).
    ///
    /// Removes any `Authorization` header and earlier `X-Amz-*` signing parameters, then appends
    /// `X-Amz-Algorithm`, `X-Amz-Credential`, `X-Amz-Date`, `X-Amz-SignedHeaders`,
    /// `X-Amz-Expires`, `X-Amz-Security-Token` (if any; signed unless
    /// ``Options/omitSessionToken``) and `X-Amz-Signature`. The payload hash is that of
    /// ``SigV4Request/payload``: use ``SigV4Request/Payload/unsigned`` for S3.
    ///
    /// - Throws: ``SigV4Error/invalidExpiration(seconds:)`` unless 1 ≤ `expires` ≤ 604,800,
    ///   ``SigV4Error/missingHost`` or ``SigV4Error/invalidScope(_:)``.
    public func presign(_ request: SigV4Request, credentials: SigV4Credentials, date: Date, expires: Int) throws(SigV4Error) -> SigV4SignedRequest {
        try checkScope()
        guard (1...604_800).contains(expires) else { throw .invalidExpiration(seconds: expires) }
        var request = request
        guard request.headers.contains(where: { $0.name.lowercased() == "host" }) else { throw .missingHost }
        let time = AmzDate(date)
        let scope = credentialScope(time)
        request.removeHeaders("authorization")
        let signingParameters: Set<String> = [
            "X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires",
            "X-Amz-SignedHeaders", "X-Amz-Security-Token", "X-Amz-Signature",
        ]
        request.query.removeAll { signingParameters.contains($0.name) }
        let signedHeaders = signedHeaderNames(request, excluding: options.unsignedHeaders).joined(separator: ";")
        request.query.append(contentsOf: [
            .init("X-Amz-Algorithm", Self.algorithm),
            .init("X-Amz-Credential", "\(credentials.accessKeyID)/\(scope)"),
            .init("X-Amz-Date", time.timestamp),
            .init("X-Amz-SignedHeaders", signedHeaders),
            .init("X-Amz-Expires", String(expires)),
        ])
        if let token = credentials.sessionToken, !options.omitSessionToken {
            request.query.append(.init("X-Amz-Security-Token", token))
        }
        let payloadHash = Self.payloadHash(request.payload)
        let (canonical, _) = canonicalRequest(request, payloadHash: payloadHash, excluding: options.unsignedHeaders)
        let stringToSign = Self.stringToSign(canonicalRequest: canonical, timestamp: time.timestamp, scope: scope)
        let signature = signature(stringToSign: stringToSign, secretAccessKey: credentials.secretAccessKey, day: time.day)
        if let token = credentials.sessionToken, options.omitSessionToken {
            request.query.append(.init("X-Amz-Security-Token", token))
        }
        request.query.append(.init("X-Amz-Signature", signature))
        return SigV4SignedRequest(
            request: request, canonicalRequest: canonical, stringToSign: stringToSign, signature: signature,
            signedHeaders: signedHeaders, credentialScope: scope, authorization: nil
        )
    }

    // MARK: - Building blocks (public so a server can verify a signature with them)

    /// The canonical request of `request` as it stands (no headers added), signing every header
    /// not in ``Options/unsignedHeaders``.
    public func canonicalRequest(_ request: SigV4Request) -> String {
        canonicalRequest(request, payloadHash: Self.payloadHash(request.payload), excluding: options.unsignedHeaders).canonical
    }

    /// `AWS4-HMAC-SHA256\n<timestamp>\n<scope>\n<hex SHA-256 of the canonical request>`.
    public static func stringToSign(canonicalRequest: String, timestamp: String, scope: String) -> String {
        let hash = SigV4Canonical.hex(SHA256.hash(data: Array(canonicalRequest.utf8)))
        return "\(algorithm)\n\(timestamp)\n\(scope)\n\(hash)"
    }

    /// The signing key: HMAC-SHA256 chained over the day, region, service and `aws4_request`,
    /// starting from `"AWS4" + secret`.
    public func signingKey(secretAccessKey: String, day: String) -> SymmetricKey {
        var key = SymmetricKey(data: Array(("AWS4" + secretAccessKey).utf8))
        for part in [day, region, service, "aws4_request"] {
            key = SymmetricKey(data: HMAC<SHA256>.authenticationCode(for: Array(part.utf8), using: key))
        }
        return key
    }

    /// The hex signature of `stringToSign` for the day `yyyyMMdd`.
    public func signature(stringToSign: String, secretAccessKey: String, day: String) -> String {
        let key = signingKey(secretAccessKey: secretAccessKey, day: day)
        return SigV4Canonical.hex(HMAC<SHA256>.authenticationCode(for: Array(stringToSign.utf8), using: key))
    }

    /// The hash placed last in the canonical request.
    public static func payloadHash(_ payload: SigV4Request.Payload) -> String {
        switch payload {
        case .bytes(let bytes): SigV4Canonical.hex(SHA256.hash(data: bytes))
        case .sha256(let hash): hash
        case .unsigned: unsignedPayload
        }
    }

    // MARK: - Canonical request

    private func credentialScope(_ time: AmzDate) -> String {
        "\(time.day)/\(region)/\(service)/aws4_request"
    }

    private func checkScope() throws(SigV4Error) {
        for part in [region, service] where part.isEmpty || part.contains("/") {
            throw .invalidScope(part)
        }
    }

    /// Signed headers as `(lower-case name, canonical value)`, sorted by name; repeated headers
    /// are joined with `,` in their original order.
    private func canonicalHeaders(_ request: SigV4Request, excluding: Set<String>) -> [(name: String, value: String)] {
        var entries: [(name: String, index: Int, value: String)] = []
        entries.reserveCapacity(request.headers.count)
        for (index, header) in request.headers.enumerated() {
            let name = header.name.lowercased()
            guard !excluding.contains(name) else { continue }
            entries.append((name, index, SigV4Canonical.trimAll(header.value)))
        }
        entries.sort { a, b in
            a.name == b.name ? a.index < b.index : SigV4Canonical.bytewiseLess(a.name, b.name)
        }
        var result: [(name: String, value: String)] = []
        for entry in entries {
            if let last = result.last, last.name == entry.name {
                result[result.count - 1].value += "," + entry.value
            } else {
                result.append((entry.name, entry.value))
            }
        }
        return result
    }

    private func signedHeaderNames(_ request: SigV4Request, excluding: Set<String>) -> [String] {
        canonicalHeaders(request, excluding: excluding).map(\.name)
    }

    private func canonicalRequest(_ request: SigV4Request, payloadHash: String, excluding: Set<String>) -> (canonical: String, signedHeaders: String) {
        let uri = SigV4Canonical.canonicalURI(request.path, normalize: options.normalizePath, encode: options.uriEncodePath)
        let query = request.query
            .map { (SigV4Canonical.uriEncode($0.name), SigV4Canonical.uriEncode($0.value)) }
            .sorted { a, b in
                a.0 == b.0 ? SigV4Canonical.bytewiseLess(a.1, b.1) : SigV4Canonical.bytewiseLess(a.0, b.0)
            }
            .map { $0.0 + "=" + $0.1 }
            .joined(separator: "&")
        let headers = canonicalHeaders(request, excluding: excluding)
        let signedHeaders = headers.map(\.name).joined(separator: ";")
        var canonical = request.method.uppercased() + "\n" + uri + "\n" + query + "\n"
        for header in headers {
            canonical += header.name + ":" + header.value + "\n"
        }
        canonical += "\n" + signedHeaders + "\n" + payloadHash
        return (canonical, signedHeaders)
    }
}
