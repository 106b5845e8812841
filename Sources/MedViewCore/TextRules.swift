/// What text the service accepts from a patient, in one place: message text and conversation
/// titles alike.
///
/// - Text with no visible character is *blank*: only whitespace, or only default-ignorable code
///   points (zero-width space and joiners, word joiner, byte-order mark, soft hyphen, variation
///   selectors, Hangul fillers). A blank message is refused as empty; a blank title is no title.
/// - Text with a control character other than tab, line feed and carriage return (U+0000–U+001F,
///   U+007F, U+0080–U+009F) is *not text*, and is refused with ``ChatError/invalidText``. Such
///   characters have no meaning in a chat, break terminals and logs, and U+0000 cannot be stored
///   by every database (PostgreSQL refuses it in text); refusing them at the edge keeps the
///   promise that what a patient sent is what is stored, in every store.
public enum TextRules {
    /// Whether `text` has no visible character.
    public static func isBlank(_ text: some StringProtocol) -> Bool {
        text.unicodeScalars.allSatisfy { $0.properties.isWhitespace || $0.properties.isDefaultIgnorableCodePoint }
    }

    /// Whether `scalar` is a control character that is not tab, line feed or carriage return.
    public static func isForbiddenControl(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x09, 0x0A, 0x0D: false
        case 0x00...0x1F, 0x7F...0x9F: true
        default: false
        }
    }

    /// Whether `text` holds a forbidden control character (``isForbiddenControl(_:)``).
    public static func containsForbiddenControl(_ text: some StringProtocol) -> Bool {
        text.unicodeScalars.contains(where: isForbiddenControl)
    }

    /// Checks a patient's message: refused as ``ChatError/invalidText`` or ``ChatError/emptyMessage``.
    public static func validateMessage(_ text: String) throws(ChatError) {
        guard !containsForbiddenControl(text) else { throw .invalidText }
        guard !isBlank(text) else { throw .emptyMessage }
    }

    /// A conversation title as given by a client: `nil` when blank (the caller uses its default),
    /// trimmed and cut to `maxCharacters` otherwise.
    /// - Throws: ``ChatError/invalidText`` for a forbidden control character.
    public static func title(_ raw: String?, maxCharacters: Int = 120) throws(ChatError) -> String? {
        guard let raw else { return nil }
        guard !containsForbiddenControl(raw) else { throw .invalidText }
        guard !isBlank(raw) else { return nil }
        return String(raw.trimmingWhitespace().prefix(maxCharacters))
    }
}

extension String {
    /// The string without leading and trailing whitespace (and invisible characters).
    func trimmingWhitespace() -> Substring {
        let invisible = { (c: Character) in TextRules.isBlank(String(c)) }
        guard let start = firstIndex(where: { !invisible($0) }), let end = lastIndex(where: { !invisible($0) }) else { return "" }
        return self[start...end]
    }
}

extension TextRules {
    /// Model text without the control characters patients may not send either (U+0000 and the
    /// other C0/C1 controls but tab, line feed and carriage return): they mean nothing in a chat,
    /// and some stores cannot hold them (PostgreSQL text cannot hold U+0000). What is sent to
    /// clients and what is stored are the same cleaned text.
    public static func cleanModelText(_ text: String) -> String {
        guard TextRules.containsForbiddenControl(text) else { return text }
        var scalars = String.UnicodeScalarView()
        scalars.append(contentsOf: text.unicodeScalars.lazy.filter { !TextRules.isForbiddenControl($0) })
        return String(scalars)
    }
}
