/// The result of signing: the request to send, and every intermediate of the signature (the
/// canonical request and string to sign are what to compare when a server says
/// `SignatureDoesNotMatch`).
public struct SigV4SignedRequest: Sendable, Hashable {
    /// The request to send. Header form: with `X-Amz-Date`, `Authorization` (and
    /// `X-Amz-Security-Token`, `x-amz-content-sha256` when they apply) appended. Query form: with
    /// the `X-Amz-*` parameters appended to ``SigV4Request/query``.
    public var request: SigV4Request
    /// The canonical request that was hashed.
    public var canonicalRequest: String
    /// The string to sign.
    public var stringToSign: String
    /// The signature (64 lower-case hex digits).
    public var signature: String
    /// The signed header names, `;`-separated.
    public var signedHeaders: String
    /// `yyyyMMdd/region/service/aws4_request`.
    public var credentialScope: String
    /// The `Authorization` header value (header form only).
    public var authorization: String?

    /// A signed request; made by ``SigV4Signer``.
    public init(request: SigV4Request, canonicalRequest: String, stringToSign: String, signature: String, signedHeaders: String, credentialScope: String, authorization: String?) {
        self.request = request
        self.canonicalRequest = canonicalRequest
        self.stringToSign = stringToSign
        self.signature = signature
        self.signedHeaders = signedHeaders
        self.credentialScope = credentialScope
        self.authorization = authorization
    }
}
