extension String {
    /// The string whose UTF-8 is exactly `bytes`, or `nil` if they are not valid UTF-8.
    ///
    /// Same answer as `String(validating:as: UTF8.self)`, which in Swift 6.3 runs unspecialized
    /// generic code (a metadata look-up per call): on the hot paths (every model delta, every
    /// stored text read) this decodes with the standard library's contiguous fast path, then
    /// checks that nothing was repaired, since repairing invalid input changes its bytes.
    @inlinable
    public init?(validUTF8 bytes: UnsafeBufferPointer<UInt8>) {
        let decoded = String(decoding: bytes, as: UTF8.self)
        var copy = decoded
        let same = copy.withUTF8 { utf8 in
            utf8.count == bytes.count && (bytes.isEmpty || memcmpEqual(utf8.baseAddress!, bytes.baseAddress!, bytes.count))
        }
        guard same else { return nil }
        self = decoded
    }
}

/// Whether the `count` bytes at `a` and `b` are equal.
@usableFromInline
func memcmpEqual(_ a: UnsafePointer<UInt8>, _ b: UnsafePointer<UInt8>, _ count: Int) -> Bool {
    var i = 0
    while i < count {
        if a[i] != b[i] { return false }
        i += 1
    }
    return true
}
