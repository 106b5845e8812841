/// Measures the medication checker's misspelling tolerance instead of guessing it.
///
/// Every one-word brand or generic name of five letters or more in the lexicon is misspelled
/// by fixed edit rules (a letter dropped, two neighbours swapped, a letter doubled, a letter
/// replaced by its QWERTY neighbour, a sound spelled another way: ph/f, x/z, c/k, y/i, ie/ei), in
/// a sentence ("I take …"); a variant that is itself a real name or a dictionary word is
/// skipped. Harder rules, the kinds of misspelling seen in the fresh sets, are measured apart:
/// two vowels wrong ("xeralto"), the first letter spelled by sound ("symbalta", "zanax"), x
/// written ks/cs/cks ("plavics"), and the name split in two ("klor kon"). A hit is a variant
/// read as the intended medicine; a wrong match one read as another.
/// Then every word of a word list that is not a drug name is checked, alone and in a
/// medication sentence ("I take … every day"): any medicine read from it is a false match.
public enum SafetyMisspellingMeasure {
    /// Hits for one edit rule.
    public struct RuleScore: Sendable, Equatable {
        /// `drop`, `swap`, `double`, `keyboard`, `vowel`, `sound`.
        public var rule: String
        /// Misspelled variants tried.
        public var variants: Int
        /// Read as the intended medicine.
        public var hits: Int
        /// Read as a different medicine.
        public var wrong: Int
    }

    /// The whole measurement.
    public struct Report: Sendable {
        /// Names misspelled.
        public var names: Int
        /// Per edit rule.
        public var rules: [RuleScore]
        /// Dictionary words checked (nil when no word list was given).
        public var dictionaryWords: Int
        /// Dictionary words read as a medicine.
        public var falseMatches: [String]
        /// Dictionary words read as a medicine where a medicine stands ("I take … every day").
        public var falseMatchesInSentence: [String] = []

        /// Variants read as the intended medicine, over all variants.
        public var hitRate: Double {
            let v = rules.reduce(0) { $0 + $1.variants }
            return v == 0 ? 0 : Double(rules.reduce(0) { $0 + $1.hits }) / Double(v)
        }
        /// Variants read as another medicine, over all variants.
        public var wrongRate: Double {
            let v = rules.reduce(0) { $0 + $1.variants }
            return v == 0 ? 0 : Double(rules.reduce(0) { $0 + $1.wrong }) / Double(v)
        }
        /// Dictionary words read as a medicine, over the words checked.
        public var falseMatchRate: Double { dictionaryWords == 0 ? 0 : Double(falseMatches.count) / Double(dictionaryWords) }
        /// Dictionary words read as a medicine in a medication sentence, over the words checked.
        public var falseMatchInSentenceRate: Double { dictionaryWords == 0 ? 0 : Double(falseMatchesInSentence.count) / Double(dictionaryWords) }
        /// The single-edit rules (the first measurement's).
        public static let basicRules: Set<String> = ["drop", "swap", "double", "keyboard", "vowel", "sound"]

        /// A plain-text summary.
        public var text: String {
            var lines = ["Misspelling tolerance of the medication names (\(names) names of 5+ letters)"]
            lines.append("rule        variants   hits  wrong   hit rate")
            for r in rules {
                lines.append(r.rule.padding(toLength: 10, withPad: " ", startingAt: 0)
                    + String(format: "%10d %6d %6d   %6.1f%%", r.variants, r.hits, r.wrong, r.variants == 0 ? 0 : 100 * Double(r.hits) / Double(r.variants)))
            }
            lines.append(String(format: "all: %.1f%% read as the intended medicine, %.2f%% as another", 100 * hitRate, 100 * wrongRate))
            let basic = rules.filter { Self.basicRules.contains($0.rule) }
            let v = basic.reduce(0) { $0 + $1.variants }
            if v > 0 {
                lines.append(String(format: "single-edit rules only: %.1f%% read as the intended medicine", 100 * Double(basic.reduce(0) { $0 + $1.hits }) / Double(v)))
            }
            if dictionaryWords > 0 {
                lines.append(String(format: "word list: %d of %d words read as a medicine (%.3f%%)%@", falseMatches.count, dictionaryWords, 100 * falseMatchRate,
                                    falseMatches.isEmpty ? "" : ": " + falseMatches.prefix(40).joined(separator: ", ")))
                lines.append(String(format: "word list in \"I take … every day\": %d read as a medicine (%.3f%%)%@", falseMatchesInSentence.count, 100 * falseMatchInSentenceRate,
                                    falseMatchesInSentence.isEmpty ? "" : ": " + falseMatchesInSentence.prefix(60).joined(separator: ", ")))
            }
            return lines.joined(separator: "\n")
        }
    }

    /// Runs the measurement with the bundled checker; `dictionary` is a word list (one word per
    /// element) for the false-match half, or empty to skip it.
    public static func run(dictionary: [String] = []) throws(SafetyDataError) -> Report {
        let checker = try MedicationChecker()
        let dictionarySet = Set(dictionary)
        let names = checker.nameTable
        let allNames = Set(names.keys)
        var rules: [String: RuleScore] = [:]
        let order = ["drop", "swap", "double", "keyboard", "vowel", "sound", "vowels2", "initial", "cluster", "split"]
        for r in order { rules[r] = RuleScore(rule: r, variants: 0, hits: 0, wrong: 0) }
        var measured = 0
        for (name, generics) in names.sorted(by: { $0.key < $1.key }) {
            guard name.count >= 5, name.allSatisfy({ $0.isLetter && $0.isASCII }) else { continue }
            measured += 1
            for (rule, variant) in variants(of: name) + harderVariants(of: name) {
                guard !allNames.contains(variant), !dictionarySet.contains(variant),
                      !variant.split(separator: " ").contains(where: { allNames.contains(String($0)) }) else { continue }
                let read = Set(checker.mentions(in: "I take \(variant) every day").map(\.name))
                rules[rule]!.variants += 1
                if !read.isDisjoint(with: generics) {
                    rules[rule]!.hits += 1
                } else if !read.isEmpty {
                    rules[rule]!.wrong += 1
                }
            }
        }
        var falseMatches: [String] = []
        var inSentence: [String] = []
        var checked = 0
        for word in dictionary where word.count >= 4 && word.allSatisfy({ $0.isLowercase && $0.isASCII && $0.isLetter }) && !allNames.contains(word) {
            checked += 1
            if !checker.mentions(in: word).isEmpty { falseMatches.append(word) }
            if !checker.mentions(in: "I take \(word) every day").isEmpty { inSentence.append(word) }
        }
        var report = Report(names: measured, rules: order.map { rules[$0]! }, dictionaryWords: checked, falseMatches: falseMatches)
        report.falseMatchesInSentence = inSentence
        return report
    }

    /// QWERTY neighbours (the nearest key to the right, else left).
    static let keyboard: [Character: Character] = {
        let rows = ["qwertyuiop", "asdfghjkl", "zxcvbnm"]
        var out: [Character: Character] = [:]
        for row in rows.map(Array.init) {
            for (i, c) in row.enumerated() { out[c] = i + 1 < row.count ? row[i + 1] : row[i - 1] }
        }
        return out
    }()

    /// Sound-alike spellings, both ways.
    static let sounds: [(String, String)] = [("ph", "f"), ("x", "z"), ("c", "k"), ("y", "i"), ("ie", "ei"), ("qu", "kw"), ("ck", "k"), ("tion", "shun"), ("ine", "ene"), ("ol", "al")]

    /// Harder misspellings by rule: `vowels2` (two vowels wrong), `initial` (the first letter
    /// spelled by its sound), `cluster` (x as ks, cks or cs and back), `split` (the name in two
    /// words at its middle).
    static func harderVariants(of name: String) -> [(String, String)] {
        let c = Array(name)
        var out: [(String, String)] = []
        var seen: Set<String> = [name]
        func add(_ rule: String, _ s: String) {
            if seen.insert(s).inserted { out.append((rule, s)) }
        }
        let other: [Character: Character] = ["a": "e", "e": "a", "i": "e", "o": "a", "u": "o"]
        let vowels = c.indices.filter { $0 > 0 && other[c[$0]] != nil }
        for (n, i) in vowels.enumerated() {
            for j in vowels[(n + 1)...] {
                var v = c
                v[i] = other[c[i]]!
                v[j] = other[c[j]]!
                add("vowels2", String(v))
            }
        }
        let soft: Set<Character> = ["e", "i", "y"]
        let second: Character? = c.count > 1 ? c[1] : nil
        switch c[0] {
        case "c": add("initial", (second.map { soft.contains($0) } == true ? "s" : "k") + String(c.dropFirst()))
        case "s" where second.map({ soft.contains($0) }) == true: add("initial", "c" + String(c.dropFirst()))
        case "k": add("initial", "c" + String(c.dropFirst()))
        case "x": add("initial", "z" + String(c.dropFirst()))
        case "z": add("initial", "x" + String(c.dropFirst()))
        case "f": add("initial", "ph" + String(c.dropFirst()))
        case "p" where second == "h": add("initial", "f" + String(c.dropFirst(2)))
        default: break
        }
        for (a, bs) in [("x", ["ks", "cks", "cs"]), ("ks", ["x"]), ("cs", ["x"]), ("cks", ["x"])] {
            var from = name.index(after: name.startIndex)
            while from < name.endIndex, let r = name.range(of: a, range: from..<name.endIndex) {
                for b in bs { add("cluster", name.replacingCharacters(in: r, with: b)) }
                from = r.upperBound
            }
        }
        if c.count >= 7 {
            let mid = c.count / 2
            add("split", String(c[..<mid]) + " " + String(c[mid...]))
        }
        return out
    }

    /// Misspelled variants of `name` by rule; the first letter is kept except by `sound`.
    static func variants(of name: String) -> [(String, String)] {
        let c = Array(name)
        var out: [(String, String)] = []
        var seen: Set<String> = [name]
        func add(_ rule: String, _ chars: [Character]) {
            let s = String(chars)
            if seen.insert(s).inserted { out.append((rule, s)) }
        }
        for i in 1..<c.count { var v = c; v.remove(at: i); add("drop", v) }
        for i in 1..<(c.count - 1) where c[i] != c[i + 1] { var v = c; v.swapAt(i, i + 1); add("swap", v) }
        for i in 1..<c.count { var v = c; v.insert(c[i], at: i); add("double", v) }
        for i in 1..<c.count { if let k = keyboard[c[i]] { var v = c; v[i] = k; add("keyboard", v) } }
        // The commonest patient misspelling: one vowel for another ("lisinipril", "ibuprofin").
        for i in 1..<c.count where "aeiou".contains(c[i]) {
            for w in "aeiou" where w != c[i] { var v = c; v[i] = w; add("vowel", v) }
        }
        // One sound-alike spelling at a time ("zanax", "xanaz").
        for (a, b) in sounds {
            for (x, y) in [(a, b), (b, a)] {
                var from = name.startIndex
                while let r = name.range(of: x, range: from..<name.endIndex) {
                    add("sound", Array(name.replacingCharacters(in: r, with: y)))
                    from = r.upperBound
                }
            }
        }
        return out
    }
}
