/// Reads medicine names that patients spell by ear: "Plavics", "symbalta", "xeralto", "orapp",
/// "klor kon", "halcyon" (for Halcion).
///
/// Every lexicon name gets a pronunciation key (``key(_:)``): doubled letters collapse, and
/// letters that sound alike fold together (c before e/i/y is s, other c and ck are k; x is ks,
/// and z at the start; cs and ks are ks; z is s; ph is f; th is t; qu is kw; y is i; a final
/// silent e goes). A word the exact lexicon does not know is then read as a name when:
/// 1. its key equals the name's key (for names of 4 letters or more), or
/// 2. its key differs from the name's key in vowels only, within a budget that grows with the
///    name's length: a vowel for another vowel costs half an edit, a vowel added or dropped three
///    quarters (none up to 4 key letters, one vowel for 5 or 6, two for 7 to 9, three from 10).
///    Patients get vowels wrong far more often than consonants; a consonant wrong is left to the
///    matcher's edit-distance index (one edit, first letter kept), because consonant edits on
///    top of the sound folding made real words ("advise", "college") into names;
/// 3. two neighbouring words joined have exactly a name's key ("klor kon" → Klor-Con,
///    "pro zac" → Prozac).
/// The key's first letter must match (all vowels count as one first letter), and a word that is
/// equally close to names of different medicines is left alone.
///
/// Real words are guarded: a word on the protected list (real English words near a medicine's
/// name, `language.json`, and the medication list's own `realWords`) is read as a name only when
/// it sounds exactly like one and stands where a medicine does ("I take halcyon to sleep",
/// "on halcyon"), never by distance. ``SafetyMisspellingMeasure`` measures both halves: the
/// misspellings read as the intended medicine, and the dictionary words read as any medicine,
/// alone and in a medication sentence.
struct DrugNameResolver: Sendable {
    /// A name the resolver can read: its words as the name matcher knows them, and the
    /// medicines it stands for (to tell a real ambiguity from two names of one medicine).
    struct Name: Sendable {
        var words: [String]
        var medicines: Set<String>
    }

    private let names: [Name]
    /// Name indices by key.
    private let byKey: [String: [Int]]
    /// Keys of names by their consonant skeleton and first-letter class, for the vowel-only
    /// distance search (a word's candidates are one look-up away).
    private let keysBySkeleton: [String: [(key: [UInt8], name: Int)]]
    /// Words the name matcher knows exactly.
    private let vocabulary: Set<String>
    /// Real words that are never read as a name by distance.
    private let protected: Set<String>
    /// Words of the checker's other vocabularies (cues, fillers, people): never half of a
    /// joined name ("attack and" is not Atacand).
    private let common: Set<String>
    /// ``key(_:)`` of the words looked at: every message's longer words and word pairs are keyed.
    private let keys = BoundedMemo<String>()

    /// Words after which a word stands where a medicine does ("take", "on", "prescribed").
    static let medicationSlot: Set<String> = [
        "take", "takes", "taking", "took", "taken", "on", "prescribed", "started", "start", "starting", "use", "uses",
        "using", "used", "given", "gave", "got", "get", "tried", "try", "of", "my", "his", "her", "their", "some", "added",
        "switched", "popped", "pop", "with", "and",
    ]

    /// - Parameters:
    ///   - names: each lexicon name as the words the matcher uses, with the medicines it stands for.
    ///   - vocabulary: the words of all names (exact matches need no resolving).
    ///   - protected: real words that must not become names by distance.
    init(names: [Name], vocabulary: Set<String>, protected: Set<String>, common: Set<String> = []) {
        var byKey: [String: [Int]] = [:]
        var bySkeleton: [String: [(key: [UInt8], name: Int)]] = [:]
        for (i, n) in names.enumerated() {
            let k = Self.key(n.words.joined())
            guard k.count >= 3 else { continue }
            byKey[k, default: []].append(i)
            let chars = Array(k.utf8)
            bySkeleton[Self.skeleton(chars), default: []].append((chars, i))
        }
        self.names = names
        self.byKey = byKey
        self.keysBySkeleton = bySkeleton
        self.vocabulary = vocabulary
        self.protected = protected
        self.common = common
    }

    /// The pronunciation key of a word (letters only are kept).
    static func key(_ word: String) -> String {
        var s = collapse(Array(word.lowercased().filter { $0.isLetter && $0.isASCII }))
        guard !s.isEmpty else { return "" }
        var out: [Character] = []
        var i = 0
        while i < s.count {
            let c = s[i]
            let next: Character? = i + 1 < s.count ? s[i + 1] : nil
            switch c {
            case "p" where next == "h": out.append("f"); i += 2; continue
            case "t" where next == "h": out.append("t"); i += 2; continue
            case "q" where next == "u": out += ["k", "w"]; i += 2; continue
            case "c" where next == "k": out.append("k"); i += 2; continue
            case "c" where next == "s": out += ["k", "s"]; i += 2; continue
            case "c": out.append(next.map { "eiy".contains($0) } == true ? "s" : "k")
            case "x": out += i == 0 ? ["s"] : ["k", "s"]
            case "z": out.append("s")
            case "y": out.append("i")
            default: out.append(c)
            }
            i += 1
        }
        // A final silent e ("aldactone", "aldacton").
        if out.count > 4, out.last == "e", let before = out.dropLast().last, !isVowel(before) { out.removeLast() }
        s = collapse(out)
        return String(s)
    }

    private static func collapse(_ chars: [Character]) -> [Character] {
        var out: [Character] = []
        out.reserveCapacity(chars.count)
        for c in chars where out.last != c { out.append(c) }
        return out
    }

    static func isVowel(_ c: Character) -> Bool { "aeiou".contains(c) }

    /// Whether every character is a letter (`Character.isLetter`), without Unicode's property
    /// tables for the usual all-ASCII word.
    static func isLetters(_ word: String) -> Bool {
        if word.utf8.allSatisfy({ $0 < 0x80 }) { return word.utf8.allSatisfy(isASCIILetter) }
        return word.allSatisfy(\.isLetter)
    }

    static func isASCIILetter(_ byte: UInt8) -> Bool {
        (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
    }


    /// All vowels share one first-letter class ("amitriptyline", "emitriptyline").
    private static func initialClass(_ c: UInt8) -> UInt8 { isVowel(c) ? UInt8(ascii: "a") : c }

    private static func isVowel(_ c: UInt8) -> Bool {
        c == UInt8(ascii: "a") || c == UInt8(ascii: "e") || c == UInt8(ascii: "i") || c == UInt8(ascii: "o") || c == UInt8(ascii: "u")
    }

    /// Weighted budget (in quarter edits) for a name key of `length` letters.
    static func budget(forKeyLength length: Int) -> Int {
        switch length {
        case ..<5: 0
        case 5...6: 2
        case 7...9: 4
        default: 6
        }
    }

    /// The name words that the word at `index` (alone, or joined with the next word) stands
    /// for, and how many input words they replace; `nil` when it is no medicine.
    func resolve(_ tokens: [Token], at index: Int) -> (words: [String], consumed: Int)? {
        let t = tokens[index]
        guard t.kind == .word, t.value == nil else { return nil }
        let w = t.text
        // Two words joined: "klor kon", "pro zac".
        if index + 1 < tokens.count, tokens[index + 1].kind == .word, tokens[index + 1].value == nil {
            let u = tokens[index + 1].text
            let both = w + u
            // Each half is a name's word or no word the checker knows otherwise, and not both
            // are name words (that is an exact name, or two names).
            func joinable(_ x: String) -> Bool {
                x.count >= 3 && Self.isLetters(x) && !common.contains(x) && (vocabulary.contains(x) || !protected.contains(x))
            }
            if both.count >= 6, !(vocabulary.contains(w) && vocabulary.contains(u)),
               joinable(w), joinable(u),
               let hit = unique(byKey[keys.answer(both, Self.key)] ?? []) {
                return (names[hit].words, 2)
            }
        }
        // Short words collide by sound with too many real words ("alts", "cabs", "czar").
        guard w.count >= 5, !vocabulary.contains(w), w.utf8.allSatisfy(Self.isASCIILetter) else { return nil }
        let k = keys.answer(w, Self.key)
        guard k.count >= 4 else { return nil }
        if protected.contains(w) {
            // A real word that sounds exactly like a name, where a medicine stands.
            guard w.count >= 5, index > 0, Self.medicationSlot.contains(tokens[index - 1].text) else { return nil }
            return unique(byKey[k] ?? []).map { (names[$0].words, 1) }
        }
        if let exact = byKey[k] {
            return unique(exact).map { (names[$0].words, 1) }
        }
        let chars = Array(k.utf8)
        var best: (distance: Int, names: [Int]) = (Int.max, [])
        for (nameKey, n) in keysBySkeleton[Self.skeleton(chars)] ?? [] {
            let allowed = Self.budget(forKeyLength: nameKey.count)
            guard allowed > 0, abs(nameKey.count - chars.count) <= 2 else { continue }
            let d = Self.distance(chars, nameKey, limit: allowed)
            guard d <= allowed else { continue }
            if d < best.distance { best = (d, [n]) } else if d == best.distance { best.names.append(n) }
        }
        return unique(best.names).map { (names[$0].words, 1) }
    }

    /// The first-letter class and the consonants: vowel-only edits leave it unchanged.
    private static func skeleton(_ k: [UInt8]) -> String {
        String(decoding: [initialClass(k[0])] + k.dropFirst().filter { !isVowel($0) }, as: UTF8.self)
    }

    /// The one name meant, or `nil` when the names stand for different medicines.
    private func unique(_ ids: [Int]) -> Int? {
        guard let first = ids.first else { return nil }
        let meds = names[first].medicines
        return ids.allSatisfy { names[$0].medicines == meds } ? first : nil
    }

    /// Weighted optimal string alignment distance in quarter edits: a vowel for a vowel 2, a
    /// vowel added or dropped 3, any other edit (or two neighbours swapped) 4; `limit + 1` once
    /// it must exceed `limit`. ``resolve(_:at:)`` accepts vowel edits only (see the type's notes).
    static func distance(_ a: [UInt8], _ b: [UInt8], limit: Int) -> Int {
        let n = a.count, m = b.count
        if n == 0 || m == 0 { return 4 * max(n, m) }
        func indel(_ c: UInt8) -> Int { isVowel(c) ? 3 : 4 }
        var prev2 = [Int](repeating: 0, count: m + 1)
        var prev = [Int](repeating: 0, count: m + 1)
        var cur = [Int](repeating: 0, count: m + 1)
        for j in 1...m { prev[j] = prev[j - 1] + indel(b[j - 1]) }
        for i in 1...n {
            cur[0] = prev[0] + indel(a[i - 1])
            var rowMin = cur[0]
            for j in 1...m {
                let sub: Int
                if a[i - 1] == b[j - 1] { sub = 0 } else if isVowel(a[i - 1]) && isVowel(b[j - 1]) { sub = 2 } else { sub = 4 }
                var v = min(prev[j] + indel(a[i - 1]), cur[j - 1] + indel(b[j - 1]), prev[j - 1] + sub)
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] { v = min(v, prev2[j - 2] + 4) }
                cur[j] = v
                rowMin = min(rowMin, v)
            }
            if rowMin > limit { return limit + 1 }
            (prev2, prev, cur) = (prev, cur, prev2)
        }
        return prev[m]
    }

    /// The tokens with misspelled names replaced by the name's words (each replacement keeps the
    /// offsets of the words it replaces).
    func resolving(_ tokens: [Token]) -> [Token] {
        var out: [Token] = []
        out.reserveCapacity(tokens.count)
        var i = 0
        while i < tokens.count {
            guard let (words, consumed) = resolve(tokens, at: i) else {
                out.append(tokens[i])
                i += 1
                continue
            }
            let start = tokens[i].start
            let end = tokens[i + consumed - 1].end
            for w in words { out.append(Token(w, .word, start: start, end: end)) }
            i += consumed
        }
        return out
    }
}
