/// `bytes` as a String if they are valid UTF-8 (RFC 3629: no overlong forms, no surrogates,
/// nothing above U+10FFFF), else `nil`. Checks eight ASCII bytes at a time, then builds the
/// String without a second validation pass.
@inline(__always)
func utf8String(_ bytes: UnsafeBufferPointer<UInt8>) -> String? {
    guard isValidUTF8(bytes) else { return nil }
    return String(decoding: bytes, as: UTF8.self)
}

func isValidUTF8(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
    let count = bytes.count
    var i = 0
    if let base = bytes.baseAddress {
        let raw = UnsafeRawPointer(base)
        while i + 8 <= count, raw.loadUnaligned(fromByteOffset: i, as: UInt64.self) & 0x8080_8080_8080_8080 == 0 {
            i += 8
        }
    }
    @inline(__always) func continuation(_ index: Int) -> UInt8? {
        index < count && bytes[index] & 0xC0 == 0x80 ? bytes[index] : nil
    }
    while i < count {
        let lead = bytes[i]
        switch lead {
        case 0x00...0x7F:
            i += 1
        case 0xC2...0xDF:
            guard continuation(i + 1) != nil else { return false }
            i += 2
        case 0xE0...0xEF:
            guard let second = continuation(i + 1), continuation(i + 2) != nil else { return false }
            if lead == 0xE0, second < 0xA0 { return false }  // overlong
            if lead == 0xED, second >= 0xA0 { return false }  // UTF-16 surrogate
            i += 3
        case 0xF0...0xF4:
            guard let second = continuation(i + 1), continuation(i + 2) != nil, continuation(i + 3) != nil else { return false }
            if lead == 0xF0, second < 0x90 { return false }  // overlong
            if lead == 0xF4, second >= 0x90 { return false }  // above U+10FFFF
            i += 4
        default:
            return false
        }
    }
    return true
}
