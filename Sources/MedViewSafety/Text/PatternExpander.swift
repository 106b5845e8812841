import Foundation

/// Expands the pattern notation of the data files into plain phrases.
///
/// Notation: words separated by spaces; `(a|b c|d)` is a choice between alternatives, which may
/// nest; an empty alternative, as in `(really|)`, makes the group optional; `$name` inserts a
/// macro from `language.json` (itself usually a group). `"$cant (breathe|breath)"` expands to
/// every combination.
enum PatternExpander {
    /// Upper bound on the phrases one pattern may expand to, so a data mistake cannot blow up.
    static let maxExpansions = 20_000

    /// Every phrase the pattern stands for, as lists of words (before normalization).
    static func expand(_ pattern: String, macros: [String: String]) throws(SafetyDataError) -> [[String]] {
        var text = pattern
        // Macros may use other macros; three rounds are plenty.
        for _ in 0..<3 where text.contains("$") {
            for (name, value) in macros.sorted(by: { $0.key.count > $1.key.count }) {
                text = text.replacingOccurrences(of: "$" + name, with: value)
            }
        }
        if text.contains("$") { throw .badPattern(pattern, "unknown macro") }
        var parser = Parser(chars: Array(text), pattern: pattern)
        let phrases = try parser.sequence()
        if parser.position < parser.chars.count { throw .badPattern(pattern, "unexpected '\(parser.chars[parser.position])'") }
        return phrases.filter { !$0.isEmpty }
    }

    /// Recursive descent over the notation.
    private struct Parser {
        let chars: [Character]
        let pattern: String
        var position = 0

        init(chars: [Character], pattern: String) {
            self.chars = chars
            self.pattern = pattern
        }

        /// A sequence of words and groups, up to `|`, `)` or the end.
        mutating func sequence() throws(SafetyDataError) -> [[String]] {
            var phrases: [[String]] = [[]]
            while position < chars.count {
                let ch = chars[position]
                if ch == " " {
                    position += 1
                } else if ch == "|" || ch == ")" {
                    break
                } else if ch == "(" {
                    position += 1
                    var alternatives: [[String]] = []
                    while true {
                        alternatives += try sequence()
                        guard position < chars.count else { throw .badPattern(pattern, "unclosed group") }
                        if chars[position] == ")" { position += 1; break }
                        position += 1  // "|"; an empty alternative ("(a|)") parses as [[]]: optional group
                    }
                    phrases = try product(phrases, alternatives)
                } else {
                    var word = ""
                    while position < chars.count, !" |()".contains(chars[position]) {
                        word.append(chars[position])
                        position += 1
                    }
                    phrases = phrases.map { $0 + [word] }
                }
            }
            return phrases
        }

        private func product(_ a: [[String]], _ b: [[String]]) throws(SafetyDataError) -> [[String]] {
            guard a.count * max(b.count, 1) <= PatternExpander.maxExpansions else {
                throw .badPattern(pattern, "expands to too many phrases")
            }
            var out: [[String]] = []
            for x in a { for y in b { out.append(x + y) } }
            return out
        }
    }
}
