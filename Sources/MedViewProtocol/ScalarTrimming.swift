extension StringProtocol {
    /// The text without the Unicode scalars at either end that `isTrimmed` accepts; the scalars in
    /// between are kept as they are. Only the trimmed scalars are visited, and Foundation is not
    /// used (its trimming copies the whole text through `NSString` on Linux).
    public func trimmingScalars(where isTrimmed: (Unicode.Scalar) -> Bool) -> String {
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { !isTrimmed($0) }), let last = scalars.lastIndex(where: { !isTrimmed($0) }) else { return "" }
        var kept = String.UnicodeScalarView()
        kept.append(contentsOf: scalars[first...last])
        return String(kept)
    }
}

extension Unicode.Scalar {
    /// A space or a tab: Unicode `Zs` and U+0009, what Foundation's `CharacterSet.whitespaces` holds.
    public var isSpaceOrTab: Bool {
        self == "\t" || properties.generalCategory == .spaceSeparator
    }
}
