/// A decoded message together with the framing fields read from the wire.
public struct EventStreamFrame: Sendable, Hashable {
    /// The message.
    public var message: EventStreamMessage
    /// Total length from the prelude (prelude + headers + payload + message CRC).
    public var totalLength: UInt32
    /// Headers length from the prelude.
    public var headersLength: UInt32
    /// The prelude CRC32 (already checked).
    public var preludeCRC: UInt32
    /// The message CRC32 (already checked).
    public var messageCRC: UInt32

    /// A frame; the decoder makes these, tests compare them.
    public init(message: EventStreamMessage, totalLength: UInt32, headersLength: UInt32, preludeCRC: UInt32, messageCRC: UInt32) {
        self.message = message
        self.totalLength = totalLength
        self.headersLength = headersLength
        self.preludeCRC = preludeCRC
        self.messageCRC = messageCRC
    }
}
