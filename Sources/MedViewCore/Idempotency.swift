/// The one place that decides what a `chat.send` whose client message id was seen before gets.
///
/// A retry of the same message re-attaches to its answer (live, or rebuilt from the store) and
/// never calls the model again; the same id with a different text, or from another user, is a
/// conflict. The text is compared by digest, so the registry holds no copy of it.
enum Idempotency {
    /// What a send whose id was seen before re-attaches to.
    enum Prior {
        /// A stream still in this process's registry.
        case live(StreamRegistry.Entry)
        /// A turn found in the store (its stream left memory, or another request stored it first).
        case stored(Turn)
    }

    /// Where the retry goes.
    enum Reattach {
        case live(ResponseStream)
        case stored(streamId: String, conversationId: String)
    }

    /// Decides a repeated send of `textDigest` by `userId`.
    static func decide(_ prior: Prior, userId: String, textDigest: String) throws(ChatError) -> Reattach {
        switch prior {
        case .live(let entry):
            guard entry.stream.userId == userId, entry.textDigest == textDigest else { throw .idempotencyConflict }
            return .live(entry.stream)
        case .stored(let turn):
            guard turn.userId == userId, digest(turn.userMessage.text) == textDigest else { throw .idempotencyConflict }
            return .stored(streamId: turn.streamId, conversationId: turn.conversationId)
        }
    }

    /// FNV-1a over the UTF-8 bytes plus the length: enough to tell a retry from a different message.
    static func digest(_ text: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3
        }
        return "\(text.utf8.count):\(String(hash, radix: 16))"
    }
}
