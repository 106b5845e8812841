/// One event of a Server-Sent Events stream, as dispatched by ``ServerSentEventParser``.
public struct ServerSentEvent: Sendable, Equatable {
    /// The `event:` name; `message` when the event named none.
    public var type: String
    /// The `data:` lines' bytes joined with `\n` (no trailing newline), as they arrived: a
    /// decoder that scans them needs no string made first.
    public var bytes: [UInt8]
    /// The last `id:` seen in the stream so far, if any.
    public var lastEventId: String?

    /// The data as text (invalid UTF-8 replaced with U+FFFD).
    public var data: String { String(decoding: bytes, as: UTF8.self) }

    /// An event of `type` carrying `data`.
    public init(type: String = "message", data: String, lastEventId: String? = nil) {
        self.init(type: type, bytes: Array(data.utf8), lastEventId: lastEventId)
    }

    /// An event of `type` carrying the data `bytes`.
    public init(type: String = "message", bytes: [UInt8], lastEventId: String? = nil) {
        self.type = type
        self.bytes = bytes
        self.lastEventId = lastEventId
    }

    /// Events are equal when their type, text and last id are: bytes that are not UTF-8 compare
    /// as the text they read as.
    public static func == (lhs: ServerSentEvent, rhs: ServerSentEvent) -> Bool {
        lhs.type == rhs.type && lhs.lastEventId == rhs.lastEventId && (lhs.bytes == rhs.bytes || lhs.data == rhs.data)
    }
}
