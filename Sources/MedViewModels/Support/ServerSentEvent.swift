/// One event of a Server-Sent Events stream, as dispatched by ``ServerSentEventParser``.
public struct ServerSentEvent: Sendable, Equatable {
    /// The `event:` name; `message` when the event named none.
    public var type: String
    /// The `data:` lines joined with `\n` (no trailing newline).
    public var data: String
    /// The last `id:` seen in the stream so far, if any.
    public var lastEventId: String?

    /// An event of `type` carrying `data`.
    public init(type: String = "message", data: String, lastEventId: String? = nil) {
        self.type = type
        self.data = data
        self.lastEventId = lastEventId
    }
}
