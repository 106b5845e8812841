extension StringProtocol {
    /// The text without the Unicode scalars at either end that `isTrimmed` accepts; the scalars in
    /// between are kept as they are. Only the trimmed scalars are visited, the kept ones are copied
    /// as bytes (not appended one scalar at a time: a bearer token is trimmed on every request), and
    /// Foundation is not used (its trimming copies the whole text through `NSString` on Linux).
    public func trimmingScalars(where isTrimmed: (Unicode.Scalar) -> Bool) -> String {
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { !isTrimmed($0) }), let last = scalars.lastIndex(where: { !isTrimmed($0) }) else { return "" }
        // Both ends are scalar boundaries, so the bytes between are whole, valid UTF-8.
        return String(decoding: utf8[first..<scalars.index(after: last)], as: UTF8.self)
    }
}

extension Unicode.Scalar {
    /// A space or a tab: Unicode `Zs` and U+0009, what Foundation's `CharacterSet.whitespaces` holds.
    public var isSpaceOrTab: Bool {
        self == "\t" || properties.generalCategory == .spaceSeparator
    }
}
