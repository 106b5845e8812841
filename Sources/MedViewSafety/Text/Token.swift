/// One unit of normalized text: a word, a number, or a break between clauses.
///
/// Offsets count Unicode scalars of the source text, so a caller can map a token back to the
/// text it came from (the stream guard releases text up to a token's start).
struct Token: Sendable, Equatable {
    /// What the token is.
    enum Kind: Sendable, Equatable {
        /// Letters (and digits mixed with letters), lowercased and folded.
        case word
        /// Digits, possibly with a decimal point or thousands separators (`value` holds it).
        case number
        /// The end of a sentence or clause: `.`, `!`, `?`, `;`, `:` or a line break.
        case boundary
        /// A comma: a weak break that ends some context scopes.
        case comma
    }

    /// Normalized text: lowercase, no diacritics, apostrophes removed, abbreviations expanded.
    var text: String
    var kind: Kind
    /// First scalar of the source text this token came from.
    var start: Int
    /// One past the last scalar of the source text this token came from.
    var end: Int
    /// The numeric value of a number token or a number word ("twenty").
    var value: Double?

    init(_ text: String, _ kind: Kind = .word, start: Int = 0, end: Int = 0, value: Double? = nil) {
        self.text = text
        self.kind = kind
        self.start = start
        self.end = end
        self.value = value
    }

    /// Whether the token is a word or a number (not a break).
    var isWordLike: Bool { kind == .word || kind == .number }
}
