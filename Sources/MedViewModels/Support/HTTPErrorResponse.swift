import NIOHTTP1

/// A response that does not carry the answer stream (an error status, or a body of the wrong
/// type), as a provider's error mapping sees it.
struct HTTPErrorResponse: Sendable {
    /// The HTTP status code.
    var status: Int
    /// The response headers.
    var headers: HTTPHeaders
    /// At most the first ``StreamingHTTPTransport/errorBodyLimit`` bytes of the body.
    var body: [UInt8]
    /// The provider's request id, from the header the transport was told to read.
    var requestId: String?
}
