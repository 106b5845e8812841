import MedViewCore

/// Signs by adding fixed headers: an API key (`x-api-key`), a bearer token, or nothing at all.
struct HeaderSigner: RequestSigner {
    /// The headers added to every request, in order.
    var headers: [(name: String, value: String)]

    /// A signer adding `headers`.
    init(_ headers: [(name: String, value: String)] = []) {
        self.headers = headers
    }

    /// `Authorization: Bearer <token>`.
    static func bearer(_ token: String) -> HeaderSigner {
        HeaderSigner([("authorization", "Bearer \(token)")])
    }

    func sign(_ request: StreamingHTTPRequest) async throws(ModelError) -> StreamingHTTPRequest {
        var signed = request
        for header in headers { signed.headers.add(name: header.name, value: header.value) }
        return signed
    }
}
