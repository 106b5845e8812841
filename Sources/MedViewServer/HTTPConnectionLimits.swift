/// What the HTTP layer allows a connection before any route runs (docs/SECURITY.md).
///
/// Each limit is answered with a typed error and the connection is closed: a request line over
/// ``maxRequestLineBytes`` gets `uri_too_long` (414); more than ``maxHeaderCount`` header fields,
/// or a head over ``maxHeaderBytes``, gets `headers_too_large` (431); a request the parser
/// refuses (such as `Content-Length: -1`) gets `malformed_request` (400); a request head not
/// complete in ``headerTimeout`` gets `request_timeout` (408). A keep-alive connection with no
/// request for ``idleTimeout`` is closed without an answer.
public struct HTTPConnectionLimits: Sendable, Equatable {
    /// Longest time to receive a request head: from the connection's start for its first
    /// request, from the first byte of each later one. Also the longest pause while a request
    /// body is being read.
    public var headerTimeout: Duration
    /// Longest wait for the next request on a keep-alive connection (measured from the end of the
    /// previous response). Longer than a load balancer's own idle timeout (60 s on an ALB), so the
    /// balancer, not this server, closes idle connections it pools.
    public var idleTimeout: Duration
    /// Longest request line (`GET /path?query HTTP/1.1`), in bytes, without its line end.
    public var maxRequestLineBytes: Int
    /// Most header fields in one request head.
    public var maxHeaderCount: Int
    /// Largest request head (request line and header fields), in bytes.
    public var maxHeaderBytes: Int
    /// Most connections open at once that have not completed an authenticated request or
    /// WebSocket upgrade. At the limit, the oldest such connection that is not in the middle of a
    /// request is closed to make room; when every one is busy, the new one is refused with
    /// `too_many_connections` (429). Keep it well below the process's open-file limit.
    public var maxUnauthenticatedConnections: Int

    public init(
        headerTimeout: Duration = .seconds(10),
        idleTimeout: Duration = .seconds(75),
        maxRequestLineBytes: Int = 8 * 1024,
        maxHeaderCount: Int = 100,
        maxHeaderBytes: Int = 32 * 1024,
        maxUnauthenticatedConnections: Int = 256
    ) {
        self.headerTimeout = headerTimeout
        self.idleTimeout = idleTimeout
        self.maxRequestLineBytes = maxRequestLineBytes
        self.maxHeaderCount = maxHeaderCount
        self.maxHeaderBytes = maxHeaderBytes
        self.maxUnauthenticatedConnections = maxUnauthenticatedConnections
    }
}
