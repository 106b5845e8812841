/// Cuts a model's deltas into chunks for the client.
///
/// Invariants:
/// - A chunk holds at most `maxCharacters` characters (extended grapheme clusters) and is never empty.
/// - A grapheme cluster is never split: the last character of the pending text is held back until
///   more text arrives or the stream finishes, because the next delta could still extend it
///   (a combining mark, a skin-tone modifier, the second half of a flag).
/// - Full chunks end at a sentence end when one lies in the last part of the window, else at a
///   word end, else at the size limit (CJK text without spaces).
/// - Pending text older than `maxDelay` is flushed up to its last break opportunity (a word end,
///   or after a CJK character), so a slow model is never held back waiting for a chunk to fill.
///   A word with no break yet waits up to four times `maxDelay` (or until it is 24 characters
///   long) before it is cut, so slow models do not produce "prescri" + "bed".
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
    private var deadline: ContinuousClock.Instant?

    /// Characters after which a chunk may end without splitting a word.
    static func isBreakOpportunity(_ ch: Character) -> Bool {
        if ch.isWhitespace || fullWidthTerminators.contains(ch) { return true }
        guard let v = ch.unicodeScalars.first?.value else { return false }
        // CJK ideographs, kana, Hangul and full-width forms: each character stands on its own.
        return (0x2E80...0x9FFF).contains(v) || (0xAC00...0xD7AF).contains(v) || (0xF900...0xFAFF).contains(v)
            || (0xFF00...0xFFEF).contains(v) || (0x20000...0x3FFFF).contains(v)
    }

    /// Pending text this long is cut even inside a word when its deadline passes.
    static let longWord = 24

    public init(configuration: Configuration = .init()) {
        self.configuration = configuration
    }

    /// Whether text is waiting to be sent.
    public var hasPending: Bool { !pending.isEmpty }

    /// When pending text should next be looked at for a flush, if any is waiting.
    public var flushDeadline: ContinuousClock.Instant? { deadline }

    private mutating func restartClock(_ now: ContinuousClock.Instant) {
        if pending.isEmpty {
            pendingSince = nil
            deadline = nil
        } else {
            pendingSince = now
            deadline = now.advanced(by: configuration.maxDelay)
        }
    }

    /// Adds a delta; returns the chunks that are ready now.
    public mutating func append(_ delta: String, now: ContinuousClock.Instant) -> [String] {
        guard !delta.isEmpty else { return [] }
        let wasEmpty = pending.isEmpty
        pending += delta
        if wasEmpty || deadline == nil { restartClock(now) }
        var chunks: [String] = []
        while let chunk = takeChunkIfFull() { chunks.append(chunk) }
        if !chunks.isEmpty { restartClock(now) }
        return chunks
    }

    /// Emits the pending text up to its last break opportunity, if it has one (never the last
    /// character). Used for the first chunk, which is not held back for the flush delay.
    public mutating func takeWholeWords(now: ContinuousClock.Instant) -> [String] {
        let chars = Array(pending)
        guard chars.count > 1, let cut = chars[..<(chars.count - 1)].lastIndex(where: Self.isBreakOpportunity) else { return [] }
        let chunk = String(chars[...cut])
        pending = String(chars[(cut + 1)...])
        restartClock(now)
        return [chunk]
    }

    /// Flushes pending text whose deadline has passed, up to its last break opportunity. With no
    /// break, waits until the text is long or four times `maxDelay` old, then sends all but the
    /// last character (which a later delta could still extend).
    public mutating func flushIfDue(now: ContinuousClock.Instant) -> [String] {
        guard let due = deadline, now >= due, let since = pendingSince else { return [] }
        let words = takeWholeWords(now: now)
        if !words.isEmpty { return words }
        let chars = Array(pending)
        let hardDeadline = since.advanced(by: configuration.maxDelay * 4)
        guard chars.count > 1, chars.count >= Self.longWord || now >= hardDeadline else {
            deadline = now >= hardDeadline ? nil : hardDeadline
            return []
        }
        let chunk = String(chars[..<(chars.count - 1)])
        pending = String(chars[(chars.count - 1)...])
        restartClock(now)
        return [chunk]
    }

    /// The stream is over: returns everything still pending, in chunks within the limit.
    public mutating func finish() -> [String] {
        var chunks: [String] = []
        while let chunk = takeChunkIfFull() { chunks.append(chunk) }
        if !pending.isEmpty { chunks.append(pending) }
        pending = ""
        pendingSince = nil
        deadline = nil
        return chunks
    }

    /// One chunk from the front of `pending` when it holds more than `maxCharacters` characters.
    private mutating func takeChunkIfFull() -> String? {
        // A UTF-8 length within the limit cannot hold more characters than the limit.
        guard pending.utf8.count > configuration.maxCharacters else { return nil }
        if !charactersOnly, Self.isSimpleASCII(pending) { return takeFullChunkOfBytes() }
        guard pending.count > configuration.maxCharacters else { return nil }
        return takeFullChunk()
    }

    /// Tests only: always cut on characters (the reference the byte path must agree with).
    var charactersOnly = false

    /// ASCII without a carriage return: every byte is one character (CR LF is the only cluster of
    /// two ASCII scalars), so a chunk can be cut on bytes, the same cut as on characters.
    static func isSimpleASCII(_ text: String) -> Bool {
        text.utf8.allSatisfy { $0 < 0x80 && $0 != 0x0D }
    }

    /// ``takeFullChunk()`` for simple ASCII text (``isSimpleASCII(_:)``): the same rules on bytes.
    private mutating func takeFullChunkOfBytes() -> String {
        let limit = configuration.maxCharacters
        var lastSentenceEnd: Int?
        var lastWordEnd: Int?
        var previous: UInt8 = 0
        var count = 0
        for byte in pending.utf8.prefix(limit) {
            count += 1
            // Character.isWhitespace for ASCII: tab, line feed, vertical tab, form feed, space.
            if byte == 0x20 || (0x09...0x0C).contains(byte) {
                lastWordEnd = count
                // After . ! ? : ; (the character path's sentence terminators), or a line feed.
                switch previous {
                case 0x2E, 0x21, 0x3F, 0x3A, 0x3B: lastSentenceEnd = count
                default: if byte == 0x0A { lastSentenceEnd = count }
                }
            }
            previous = byte
        }
        let cut: Int
        if let s = lastSentenceEnd, s * 5 >= limit * 3 {
            cut = s
        } else if let w = lastWordEnd, w * 2 >= limit {
            cut = w
        } else {
            cut = count
        }
        let index = pending.utf8.index(pending.utf8.startIndex, offsetBy: cut)
        let chunk = String(pending[..<index])
        pending = String(pending[index...])
        return chunk
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
            } else if Self.isBreakOpportunity(ch) {
                lastWordEnd = (next, count)
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
