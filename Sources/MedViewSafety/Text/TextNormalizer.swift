import Foundation

/// Turns free text into normalized tokens.
///
/// Steps, in one pass over the Unicode scalars:
/// - lowercase; fold diacritics ("café" → "cafe") and curly quotes; keep apostrophes inside a
///   word only long enough to check the forms where they matter ("od'd"), then drop them
///   ("can't" → "cant");
/// - split on spaces, punctuation and hyphens; sentence punctuation and line breaks become
///   `boundary` tokens, commas `comma` tokens; 😂 🤣 💀 become the word "lol";
/// - collapse letters repeated three or more times ("heeelp" → "help", "bleeeding" →
///   "bleeding": each run becomes one letter, or two when only that gives a known word);
/// - restore dropped g's ("bleedin" → "bleeding") when that gives a known word;
/// - expand texting abbreviations ("idk" → "i dont know", "rn" → "right now").
///
/// Invariants: tokens come in source order with non-decreasing offsets; a word token is never
/// empty; expansion of one source word into several tokens gives them all that word's offsets.
struct TextNormalizer: Sendable {
    private let abbreviations: [String: [String]]
    private let apostropheForms: [String: [String]]
    /// Words that the run-collapse and g-restoring steps may produce.
    private let knownWords: Set<String>

    init(language: LanguageData, knownWords: Set<String>) {
        func split(_ s: String) -> [String] { s.split(separator: " ").map(String.init) }
        abbreviations = language.abbreviations.mapValues(split)
        apostropheForms = language.apostropheForms.mapValues(split)
        self.knownWords = knownWords
    }

    /// All tokens of a complete text.
    func tokens(_ text: String) -> [Token] {
        let scalars = Array(text.unicodeScalars)
        var out: [Token] = []
        _ = tokenize(scalars, from: 0, final: true, into: &out)
        return out
    }

    /// Tokenizes `scalars[from...]`, appending complete tokens to `out`.
    ///
    /// With `final == false` the text may continue: a word touching the end is not emitted, and
    /// the returned position is where it starts, so the caller can resume there once more text
    /// arrives. With `final == true` everything is emitted and `scalars.count` is returned.
    func tokenize(_ scalars: [Unicode.Scalar], from: Int, final: Bool, into out: inout [Token]) -> Int {
        var i = from
        let n = scalars.count
        while i < n {
            let s = scalars[i]
            let cls = Self.classify(s)
            switch cls {
            case .letter, .digit:
                // Read one word.
                let start = i
                var raw: [UInt8] = []
                raw.reserveCapacity(16)
                var hasLetter = false
                var j = i
                while j < n {
                    let c = scalars[j]
                    switch Self.classify(c) {
                    case .letter:
                        hasLetter = true
                        let v = c.value
                        if v < 0x80 {
                            raw.append(UInt8(v >= 0x41 && v <= 0x5A ? v + 32 : v))
                        } else {
                            var folded = ""
                            Self.appendFolded(c, to: &folded)
                            raw.append(contentsOf: folded.utf8)
                        }
                        j += 1
                        continue
                    case .digit:
                        if c.value < 0x80 { raw.append(UInt8(c.value)) } else { raw.append(contentsOf: String(c).utf8) }
                        j += 1
                        continue
                    case .mark:
                        j += 1
                        continue
                    case .comma:
                        // "4,000": a thousands separator between digits.
                        if j > start, Self.classify(scalars[j - 1]) == .digit {
                            if j + 1 >= n && !final { return start }
                            if j + 1 < n, Self.classify(scalars[j + 1]) == .digit {
                                j += 1
                                continue
                            }
                        }
                    case .apostrophe:
                        // Inside a word ("can't", "dad's") or closing one ("dads'").
                        raw.append(UInt8(ascii: "'"))
                        j += 1
                        continue
                    case .joiner(let ch):
                        // "/" between word characters ("b/c", "24/7") and after a lone "w" ("w/");
                        // "." and "," between digits ("2.5", "4,000").
                        let prevDigit = j > start && Self.classify(scalars[j - 1]) == .digit
                        if ch == ".", Self.dottedAbbreviations.contains(String(decoding: raw, as: UTF8.self)) { j += 1; break }  // "St. John's wort"
                        if ch != "/" && !prevDigit { break }  // "once." ends the word at once
                        if j + 1 >= n {
                            if !final { return start }  // cannot tell yet
                            if ch == "/" && raw == [UInt8(ascii: "w")] { raw.append(UInt8(ascii: "/")); j += 1 }
                            break
                        }
                        let next = scalars[j + 1]
                        if ch == "/" {
                            if Self.isAlnum(next) || raw == [UInt8(ascii: "w")] {
                                raw.append(UInt8(ascii: "/"))
                                j += 1
                                continue
                            }
                        } else if prevDigit && Self.classify(next) == .digit {
                            if ch == "." { raw.append(UInt8(ascii: ".")) }
                            j += 1
                            continue
                        }
                    default:
                        break
                    }
                    break
                }
                if j >= n && !final { return start }
                emitWord(raw, hasLetter: hasLetter, start: start, end: j, into: &out)
                i = j
            case .boundary, .joiner("."):
                if let last = out.last, last.kind == .boundary, last.end == i {
                    out[out.count - 1].end = i + 1
                } else {
                    out.append(Token(".", .boundary, start: i, end: i + 1))
                }
                i += 1
            case .comma:
                out.append(Token(",", .comma, start: i, end: i + 1))
                i += 1
            case .laughter:
                out.append(Token("lol", .word, start: i, end: i + 1))
                i += 1
            default:
                i += 1
            }
        }
        return n
    }

    /// Normalizes one source word (UTF-8 bytes, already lowercased and folded) into zero or
    /// more tokens. The common case (plain letters) takes the fast path.
    private func emitWord(_ raw: [UInt8], hasLetter: Bool, start: Int, end: Int, into out: inout [Token]) {
        if hasLetter, let first = raw.first, first >= UInt8(ascii: "a"), first <= UInt8(ascii: "z"),
           !raw.contains(where: { $0 == UInt8(ascii: "'") || $0 == UInt8(ascii: "/") || $0 < 0x61 || $0 > 0x7A }),
           !Self.hasLongRun(raw) {
            let word = String(decoding: raw, as: UTF8.self)
            if let expansion = abbreviations[word] {
                for w in expansion { out.append(Token(w, .word, start: start, end: end, value: Self.numberWords[w])) }
                return
            }
            var result = word
            if raw.count > 2, raw[raw.count - 2] == UInt8(ascii: "i"), raw[raw.count - 1] == UInt8(ascii: "n"),
               !knownWords.contains(word), knownWords.contains(word + "g") {
                result = word + "g"
            }
            out.append(Token(result, .word, start: start, end: end, value: Self.numberWords[result]))
            return
        }
        emitWord(String(decoding: raw, as: UTF8.self), hasLetter: hasLetter, start: start, end: end, into: &out)
    }

    /// Normalizes one source word into zero or more tokens (the general path).
    private func emitWord(_ raw: String, hasLetter: Bool, start: Int, end: Int, into out: inout [Token]) {
        var word = raw
        var possessive = false
        if word.contains("'") {
            if let form = apostropheForms[word] {
                for w in form { out.append(Token(w, .word, start: start, end: end)) }
                return
            }
            possessive = word.hasSuffix("'s")
            word.removeAll { $0 == "'" }
            if word.isEmpty { return }
        }
        // "mum's", "hubby's": the possessive of a word the abbreviations spell out ("mom's").
        if possessive, abbreviations[word] == nil, let base = abbreviations[String(word.dropLast())], base.count == 1 {
            out.append(Token(base[0] + "s", .word, start: start, end: end))
            return
        }
        if !hasLetter {
            // Digits, possibly with "." or "/": a number, or a date-like token kept as a word.
            if let v = Double(word) {
                out.append(Token(word, .number, start: start, end: end, value: v))
            } else {
                out.append(Token(word, .word, start: start, end: end))
            }
            return
        }
        if let expansion = abbreviations[word] {
            for w in expansion { out.append(Token(w, .word, start: start, end: end, value: Self.numberWords[w])) }
            return
        }
        // "500mg", "20ml": a number glued to its unit.
        if let first = word.first, first.isASCII, first.isNumber {
            let digits = word.prefix { $0.isNumber || $0 == "." }
            let unit = word.dropFirst(digits.count)
            if !unit.isEmpty, unit.allSatisfy(\.isLetter), let v = Double(digits) {
                out.append(Token(String(digits), .number, start: start, end: end, value: v))
                emitWord(String(unit), hasLetter: true, start: start, end: end, into: &out)
                return
            }
        }
        if word.contains("/") {
            for part in word.split(separator: "/") {
                emitWord(String(part), hasLetter: part.contains(where: \.isLetter), start: start, end: end, into: &out)
            }
            return
        }
        word = repairSpelling(word)
        if let expansion = abbreviations[word] {
            for w in expansion { out.append(Token(w, .word, start: start, end: end, value: Self.numberWords[w])) }
            return
        }
        out.append(Token(word, .word, start: start, end: end, value: Self.numberWords[word]))
    }

    /// Collapses texting-style letter runs and restores a dropped final g.
    func repairSpelling(_ word: String) -> String {
        var result = word
        if Self.hasLongRun(word) {
            let single = Self.collapseRuns(word, keep: 1)
            let double = Self.collapseRuns(word, keep: 2)
            if knownWords.contains(single) || abbreviations[single] != nil {
                result = single
            } else if knownWords.contains(double) || abbreviations[double] != nil {
                result = double
            } else {
                result = single
            }
        }
        if result.hasSuffix("in"), !knownWords.contains(result), knownWords.contains(result + "g") {
            result += "g"
        }
        return result
    }

    static func hasLongRun(_ word: String) -> Bool {
        hasLongRun(Array(word.utf8))
    }

    /// Whether a byte repeats three or more times in a row.
    static func hasLongRun(_ bytes: [UInt8]) -> Bool {
        guard bytes.count >= 3 else { return false }
        for k in 2..<bytes.count where bytes[k] == bytes[k - 1] && bytes[k] == bytes[k - 2] { return true }
        return false
    }

    /// Shortens every run of three or more identical letters to `keep` letters.
    static func collapseRuns(_ word: String, keep: Int) -> String {
        let chars = Array(word)
        var out = ""
        var i = 0
        while i < chars.count {
            var j = i
            while j < chars.count && chars[j] == chars[i] { j += 1 }
            let run = j - i
            out.append(contentsOf: String(repeating: chars[i], count: run >= 3 ? keep : run))
            i = j
        }
        return out
    }

    // MARK: - Scalar classes

    enum ScalarClass: Equatable {
        case letter, digit, mark, apostrophe, joiner(Character), boundary, comma, laughter, separator
    }

    static func isAlnum(_ s: Unicode.Scalar) -> Bool {
        let c = classify(s)
        return c == .letter || c == .digit
    }

    static func classify(_ s: Unicode.Scalar) -> ScalarClass {
        let v = s.value
        if v < 128 {
            switch v {
            case 0x61...0x7A, 0x41...0x5A: return .letter
            case 0x30...0x39: return .digit
            case 0x27, 0x60: return .apostrophe
            case 0x2F: return .joiner("/")
            case 0x2E: return .joiner(".")
            case 0x2C: return .comma
            case 0x21, 0x3F, 0x3B, 0x3A, 0x0A, 0x0D: return .boundary
            default: return .separator
            }
        }
        switch v {
        case 0x2019, 0x2018, 0x02BC, 0x00B4, 0x2032: return .apostrophe
        case 0x2026, 0x3002, 0xFF01, 0xFF1F, 0x2029, 0x2028: return .boundary
        case 0x1F602, 0x1F923, 0x1F480: return .laughter
        default: break
        }
        let props = s.properties
        switch props.generalCategory {
        case .nonspacingMark, .enclosingMark, .spacingMark: return .mark
        case .decimalNumber: return .digit
        default: break
        }
        return props.isAlphabetic ? .letter : .separator
    }

    /// Appends the lowercase, diacritic-free form of a letter.
    static func appendFolded(_ s: Unicode.Scalar, to out: inout String) {
        let v = s.value
        if v < 128 {
            out.unicodeScalars.append(v >= 0x41 && v <= 0x5A ? Unicode.Scalar(v + 32)! : s)
            return
        }
        switch v {
        case 0xDF: out.append("ss"); return
        case 0xE6, 0xC6: out.append("ae"); return
        case 0xF8, 0xD8: out.append("o"); return
        case 0x131: out.append("i"); return
        case 0x142, 0x141: out.append("l"); return
        default: break
        }
        for c in s.properties.lowercaseMapping.unicodeScalars {
            // Canonical decomposition: keep the base letter, drop the combining marks.
            let decomposed = String(c).decomposedStringWithCanonicalMapping.unicodeScalars
            for d in decomposed where classify(d) != .mark {
                out.unicodeScalars.append(d)
            }
        }
    }

    /// Words whose following period is part of the word, not a sentence end.
    static let dottedAbbreviations: Set<String> = ["st", "dr", "mr", "mrs", "ms", "vs", "jr", "sr", "approx", "etc", "mt"]

    /// Values of number words, for dose statements ("take twenty tablets").
    static let numberWords: [String: Double] = [
        "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
        "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14,
        "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20,
        "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80,
        "ninety": 90, "hundred": 100, "dozen": 12, "dozens": 24, "several": 3, "few": 3,
    ]
}
