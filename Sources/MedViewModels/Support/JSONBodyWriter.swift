/// Writes a JSON request body straight into bytes, for a body of fixed shape that is sent on
/// every model call (the OpenAI-compatible one): no reflection, no intermediate `Data`.
///
/// Invariants: ``string(_:)`` writes valid JSON for any Swift string (`"` and `\` escaped, the
/// short escapes for backspace, form feed, line feed, carriage return and tab, other control
/// characters as `\u00XX`; everything else, non-ASCII included, as its UTF-8); ``number(_:)``
/// refuses what JSON cannot hold (NaN, infinities). The caller writes the punctuation between
/// values with ``raw(_:)``.
struct JSONBodyWriter {
    /// The body written so far.
    private(set) var bytes: [UInt8] = []

    /// A writer with room for `capacity` bytes before it grows.
    init(capacity: Int) {
        bytes.reserveCapacity(capacity)
    }

    /// Appends `text` as it is: keys and punctuation the caller spelled out.
    mutating func raw(_ text: StaticString) {
        text.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    /// Appends `value` as a quoted, escaped JSON string; the runs between escapes are copied
    /// whole.
    mutating func string(_ value: String) {
        bytes.append(UInt8(ascii: "\""))
        var value = value
        value.withUTF8 { utf8 in
            var run = 0
            for index in utf8.indices {
                let byte = utf8[index]
                guard byte < 0x20 || byte == 0x22 || byte == 0x5C else { continue }
                bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[run..<index]))
                run = index + 1
                bytes.append(UInt8(ascii: "\\"))
                switch byte {
                case 0x22: bytes.append(UInt8(ascii: "\""))
                case 0x5C: bytes.append(UInt8(ascii: "\\"))
                case 0x08: bytes.append(UInt8(ascii: "b"))
                case 0x0C: bytes.append(UInt8(ascii: "f"))
                case 0x0A: bytes.append(UInt8(ascii: "n"))
                case 0x0D: bytes.append(UInt8(ascii: "r"))
                case 0x09: bytes.append(UInt8(ascii: "t"))
                default:
                    bytes.append(contentsOf: [UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"), Self.hexDigit(byte >> 4), Self.hexDigit(byte & 0x0F)])
                }
            }
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[run...]))
        }
        bytes.append(UInt8(ascii: "\""))
    }

    /// Appends `value` in decimal.
    mutating func number(_ value: Int) {
        bytes.append(contentsOf: String(value).utf8)
    }

    /// Appends `value` in its shortest decimal form; `false` (nothing written) when JSON cannot
    /// hold it.
    mutating func number(_ value: Double) -> Bool {
        guard value.isFinite else { return false }
        bytes.append(contentsOf: value.description.utf8)
        return true
    }

    private static func hexDigit(_ nibble: UInt8) -> UInt8 {
        nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "a") + nibble - 10
    }
}
