/// How long a streaming model request may stay silent before it is abandoned.
public struct ModelTimeouts: Sendable, Equatable {
    /// From sending the request until the response head arrives (connecting and signing included).
    public var response: Duration
    /// Longest silence between two pieces of the response body (keep-alive pings count as data).
    public var idle: Duration
    /// The most a whole answer may take.
    public var total: Duration

    /// Timeouts with the given limits; the defaults suit a hosted model API.
    public init(response: Duration = .seconds(60), idle: Duration = .seconds(60), total: Duration = .seconds(600)) {
        self.response = response
        self.idle = idle
        self.total = total
    }
}
