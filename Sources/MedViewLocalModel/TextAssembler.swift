import Foundation

/// Turns token bytes into text deltas that are safe to send: never half a multi-byte UTF-8
/// character, never the beginning of a stop string that may still complete.
public struct TextAssembler: Sendable {
    /// Strings that end the answer (they are not emitted).
    public let stopStrings: [String]
    private var pendingBytes: [UInt8] = []
    private var held = ""
    /// Whether a stop string was seen (nothing more is emitted after it).
    public private(set) var stopped = false

    public init(stopStrings: [String]) {
        self.stopStrings = stopStrings.filter { !$0.isEmpty }
    }

    /// Adds a token's bytes; returns the text that may be emitted now (possibly empty).
    public mutating func append(_ bytes: [UInt8]) -> String {
        guard !stopped else { return "" }
        pendingBytes.append(contentsOf: bytes)
        let complete = Self.completePrefixLength(pendingBytes)
        guard complete > 0 else { return "" }
        held += String(decoding: pendingBytes[..<complete], as: UTF8.self)
        pendingBytes.removeFirst(complete)
        return release()
    }

    /// Everything still held at the end of the answer (an incomplete trailing character becomes U+FFFD).
    public mutating func finish() -> String {
        guard !stopped else { return "" }
        held += String(decoding: pendingBytes, as: UTF8.self)
        pendingBytes = []
        let out = held
        held = ""
        return out
    }

    private mutating func release() -> String {
        for stop in stopStrings {
            if let range = held.range(of: stop) {
                let out = String(held[..<range.lowerBound])
                held = ""
                stopped = true
                return out
            }
        }
        // Hold back the longest suffix that is a prefix of some stop string.
        var keep = 0
        for stop in stopStrings {
            var n = min(stop.count - 1, held.count)
            while n > keep {
                if held.hasSuffix(stop.prefix(n)) {
                    keep = n
                    break
                }
                n -= 1
            }
        }
        let cut = held.index(held.endIndex, offsetBy: -keep)
        let out = String(held[..<cut])
        held = String(held[cut...])
        return out
    }

    /// Length of the longest prefix of `bytes` that does not end inside a UTF-8 sequence.
    static func completePrefixLength(_ bytes: [UInt8]) -> Int {
        let n = bytes.count
        var i = n - 1
        var continuation = 0
        while i >= 0, continuation < 3, bytes[i] & 0xC0 == 0x80 {
            continuation += 1
            i -= 1
        }
        guard i >= 0 else { return n }
        let lead = bytes[i]
        let expected: Int
        switch lead {
        case 0x00...0x7F: expected = 0
        case 0xC0...0xDF: expected = 1
        case 0xE0...0xEF: expected = 2
        case 0xF0...0xF7: expected = 3
        default: return n  // invalid lead byte: let decoding replace it
        }
        return continuation >= expected ? n : i
    }
}
