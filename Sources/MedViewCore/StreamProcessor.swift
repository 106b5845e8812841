/// Cuts a model's deltas into chunks for the client.
///
/// Invariants:
/// - A chunk holds at most `maxCharacters` characters (extended grapheme clusters) and is never empty.
/// - A grapheme cluster is never split: the last character of the pending text is held back until
///   more text arrives or the stream finishes, because the next delta could still extend it
///   (a combining mark, a skin-tone modifier, the second half of a flag).
/// - Full chunks end at a sentence end when one lies in the last part of the window, else at a
///   word end, else at the size limit (CJK text without spaces).
/// - Pending text older than `maxDelay` is flushed up to its last word end, so a slow model is
///   never held back waiting for a chunk to fill.
///
/// The processor is a value with no clock of its own: callers pass the time, which keeps it
/// deterministic in tests.
public struct StreamProcessor: Sendable {
    /// Chunking settings.
    public struct Configuration: Sendable, Equatable {
        /// Largest chunk, in characters. Must be at least 8.
        public var maxCharacters: Int
        /// Longest time text may wait before it is flushed.
        public var maxDelay: Duration

        public init(maxCharacters: Int = 256, maxDelay: Duration = .milliseconds(50)) {
            precondition(maxCharacters >= 8, "maxCharacters must be at least 8")
            self.maxCharacters = maxCharacters
            self.maxDelay = maxDelay
        }
    }

    public let configuration: Configuration
    private var pending = ""
    private var pendingSince: ContinuousClock.Instant?

    public init(configuration: Configuration = .init()) {
        self.configuration = configuration
    }

    /// Whether text is waiting to be sent.
    public var hasPending: Bool { !pending.isEmpty }

    /// When the pending text must be flushed, if any is waiting.
    public var flushDeadline: ContinuousClock.Instant? {
        pendingSince.map { $0.advanced(by: configuration.maxDelay) }
    }

    /// Adds a delta; returns the chunks that are ready now.
    public mutating func append(_ delta: String, now: ContinuousClock.Instant) -> [String] {
        guard !delta.isEmpty else { return [] }
        if pending.isEmpty { pendingSince = now }
        pending += delta
        var chunks: [String] = []
        // A UTF-8 length within the limit cannot hold more characters than the limit.
        while pending.utf8.count > configuration.maxCharacters, pending.count > configuration.maxCharacters {
            chunks.append(takeFullChunk())
        }
        if pending.isEmpty { pendingSince = nil } else if !chunks.isEmpty { pendingSince = now }
        return chunks
    }

    /// Flushes pending text that has waited `maxDelay` or longer, up to its last word end
    /// (or all but the last character when there is none).
    public mutating func flushIfDue(now: ContinuousClock.Instant) -> [String] {
        guard let deadline = flushDeadline, now >= deadline else { return [] }
        let chars = Array(pending)
        guard chars.count > 1 else { return [] }
        var cut = chars.count - 1
        if let space = chars[..<cut].lastIndex(where: { $0.isWhitespace }) {
            cut = space + 1
        }
        let chunk = String(chars[..<cut])
        pending = String(chars[cut...])
        pendingSince = pending.isEmpty ? nil : now
        return [chunk]
    }

    /// The stream is over: returns everything still pending, in chunks within the limit.
    public mutating func finish() -> [String] {
        var chunks: [String] = []
        while pending.count > configuration.maxCharacters {
            chunks.append(takeFullChunk())
        }
        if !pending.isEmpty { chunks.append(pending) }
        pending = ""
        pendingSince = nil
        return chunks
    }

    /// Removes and returns one chunk of at most `maxCharacters` from the front of `pending`,
    /// which holds more than `maxCharacters` characters.
    private mutating func takeFullChunk() -> String {
        let limit = configuration.maxCharacters
        var index = pending.startIndex
        var count = 0
        var lastSentenceEnd: (index: String.Index, count: Int)?
        var lastWordEnd: (index: String.Index, count: Int)?
        var previous: Character?
        while count < limit, index < pending.endIndex {
            let ch = pending[index]
            let next = pending.index(after: index)
            count += 1
            if ch.isWhitespace {
                lastWordEnd = (next, count)
                if let p = previous, Self.sentenceTerminators.contains(p) { lastSentenceEnd = (next, count) }
                if ch == "\n" { lastSentenceEnd = (next, count) }
            } else if Self.fullWidthTerminators.contains(ch) {
                lastSentenceEnd = (next, count)
            }
            previous = ch
            index = next
        }
        // Prefer a sentence end in the last 40% of the window, then any word end in the last
        // half, then the hard limit.
        let cutIndex: String.Index
        if let s = lastSentenceEnd, s.count * 5 >= limit * 3 {
            cutIndex = s.index
        } else if let w = lastWordEnd, w.count * 2 >= limit {
            cutIndex = w.index
        } else {
            cutIndex = index
        }
        let chunk = String(pending[..<cutIndex])
        pending = String(pending[cutIndex...])
        return chunk
    }

    private static let sentenceTerminators: Set<Character> = [".", "!", "?", ":", ";"]
    private static let fullWidthTerminators: Set<Character> = ["。", "！", "？", "；", "…"]
}
