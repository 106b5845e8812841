extension String {
    /// The string of `prefix` followed by `scalars`, encoded to UTF-8 in one pass.
    ///
    /// Appending a slice of scalars to a `String.UnicodeScalarView` takes the generic sequence
    /// path, one scalar at a time through protocol witnesses: a few percent of the server's CPU
    /// where the output guard releases text and the emergency detector makes its letter
    /// trigrams. This gives the same string.
    init(prefix: String = "", scalars: ArraySlice<Unicode.Scalar>) {
        var prefix = prefix
        var capacity = prefix.utf8.count
        for scalar in scalars { capacity += UTF8.width(scalar) }
        self = prefix.withUTF8 { head in
            String(unsafeUninitializedCapacity: capacity) { buffer in
                var i = 0
                for byte in head {
                    buffer[i] = byte
                    i += 1
                }
                for scalar in scalars {
                    let value = scalar.value
                    switch value {
                    case ..<0x80:
                        buffer[i] = UInt8(truncatingIfNeeded: value)
                        i += 1
                    case ..<0x800:
                        buffer[i] = UInt8(truncatingIfNeeded: 0xC0 | value >> 6)
                        buffer[i + 1] = UInt8(truncatingIfNeeded: 0x80 | value & 0x3F)
                        i += 2
                    case ..<0x10000:
                        buffer[i] = UInt8(truncatingIfNeeded: 0xE0 | value >> 12)
                        buffer[i + 1] = UInt8(truncatingIfNeeded: 0x80 | value >> 6 & 0x3F)
                        buffer[i + 2] = UInt8(truncatingIfNeeded: 0x80 | value & 0x3F)
                        i += 3
                    default:
                        buffer[i] = UInt8(truncatingIfNeeded: 0xF0 | value >> 18)
                        buffer[i + 1] = UInt8(truncatingIfNeeded: 0x80 | value >> 12 & 0x3F)
                        buffer[i + 2] = UInt8(truncatingIfNeeded: 0x80 | value >> 6 & 0x3F)
                        buffer[i + 3] = UInt8(truncatingIfNeeded: 0x80 | value & 0x3F)
                        i += 4
                    }
                }
                return i
            }
        }
    }
}
