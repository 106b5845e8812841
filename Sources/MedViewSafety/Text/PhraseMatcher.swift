/// Finds phrase patterns in a token list with one ``PhraseAutomaton`` pass.
///
/// Built once from expanded, normalized phrases. At match time every token becomes a symbol:
/// a vocabulary word, `<num>` for numbers (and number words outside the vocabulary), `<year>`
/// for numbers from 1900 to 2100, a misspelling corrected by the ``FuzzyIndex`` (when enabled),
/// or "unknown". Filler words are skipped (when enabled) so "my chest really hurts" matches
/// "chest hurts"; breaks (sentence ends, commas) reset the automaton, so no match spans them.
struct PhraseMatcher: Sendable {
    /// One occurrence of a phrase: `payload` is the caller's id; `first...last` are indices into
    /// the full token list (fillers inside the span included).
    struct Match: Sendable, Equatable {
        var payload: Int
        var first: Int
        var last: Int
    }

    static let numberSymbol = "<num>"
    static let yearSymbol = "<year>"

    private let symbols: [String: Int32]
    /// The automaton, for callers that feed symbols one at a time (the stream guard).
    let automaton: PhraseAutomaton
    private let payloads: [Int]
    private let fillers: Set<String>
    private let fuzzy: FuzzyIndex?
    /// Sound keys of the vocabulary words that only one word has (``SoundKey``), when enabled.
    private let sounds: [String: Int32]
    private let protected: Set<String>
    private let numberID: Int32
    private let yearID: Int32

    /// The words the patterns use (for the normalizer's known-word list).
    var vocabulary: Set<String> { Set(symbols.keys) }

    /// - Parameters:
    ///   - phrases: normalized phrases (lists of words, `<num>`/`<year>` allowed) and the payload
    ///     each reports.
    ///   - fillers: words skipped in the input (and removed from the phrases) when matching.
    ///   - fuzzy: whether unknown input words may be corrected to vocabulary words.
    ///   - protected: real words that fuzzy correction must leave alone.
    ///   - soundKeys: whether a word no other way matches may be found by its ``SoundKey``.
    init(phrases: [(words: [String], payload: Int)], fillers: Set<String>, fuzzy: Bool, protected: Set<String>, soundKeys: Bool = false) {
        var symbols: [String: Int32] = [Self.numberSymbol: 0, Self.yearSymbol: 1]
        var sequences: [[Int32]] = []
        var payloads: [Int] = []
        var seen: Set<[Int32]> = []
        for phrase in phrases {
            let words = phrase.words.filter { !fillers.contains($0) }
            guard !words.isEmpty else { continue }
            var seq: [Int32] = []
            for w in words {
                if let s = symbols[w] {
                    seq.append(s)
                } else {
                    let s = Int32(symbols.count)
                    symbols[w] = s
                    seq.append(s)
                }
            }
            // The same phrase with the same payload once is enough.
            guard seen.insert(seq + [Int32(truncatingIfNeeded: phrase.payload)]).inserted else { continue }
            sequences.append(seq)
            payloads.append(phrase.payload)
        }
        self.symbols = symbols
        self.automaton = PhraseAutomaton(patterns: sequences)
        self.payloads = payloads
        self.fillers = fillers
        self.numberID = 0
        self.yearID = 1
        self.protected = protected
        var sounds: [String: Int32] = [:]
        if soundKeys {
            var count: [String: Int] = [:]
            let words = symbols.filter { $0.key.count >= 5 && $0.key.allSatisfy(\.isLetter) }
            for w in words.keys { count[SoundKey.key(w), default: 0] += 1 }
            for (w, id) in words where count[SoundKey.key(w)] == 1 { sounds[SoundKey.key(w)] = id }
        }
        self.sounds = sounds
        if fuzzy {
            let terms = symbols.keys.filter { $0.count >= 4 && $0.allSatisfy(\.isLetter) }
            self.fuzzy = FuzzyIndex(terms: terms, protected: protected)
        } else {
            self.fuzzy = nil
        }
    }

    /// The symbol a token stands for; `nil` for a filler to skip, `-1` for a word no pattern uses
    /// or a break.
    func symbol(for token: Token) -> Int32? {
        switch token.kind {
        case .boundary, .comma:
            return -1
        case .number:
            if let v = token.value, v >= 1900, v <= 2100, v == v.rounded() { return yearID }
            return numberID
        case .word:
            if fillers.contains(token.text) { return nil }
            if let s = symbols[token.text] { return s }
            if token.value != nil { return numberID }
            if let f = fuzzy, let corrected = f.correct(token.text), let s = symbols[corrected] { return s }
            if !sounds.isEmpty, token.text.count >= 5, !protected.contains(token.text), let s = sounds[SoundKey.key(token.text)] { return s }
            return -1
        }
    }

    /// Every phrase occurrence in `tokens`, in order of their last token.
    func matches(in tokens: [Token]) -> [Match] {
        var out: [Match] = []
        var fed: [Int] = []
        fed.reserveCapacity(tokens.count)
        var state: Int32 = 0
        for (i, token) in tokens.enumerated() {
            guard let symbol = symbol(for: token) else { continue }
            fed.append(i)
            state = automaton.step(state, symbol)
            for p in automaton.matches(at: state) {
                let length = Int(automaton.patternLengths[Int(p)])
                out.append(Match(payload: payloads[Int(p)], first: fed[fed.count - length], last: i))
            }
        }
        return out
    }

    /// Streaming use: the payload of automaton pattern `id`.
    func payload(ofPattern id: Int32) -> Int { payloads[Int(id)] }
}

/// Builds matchers from the pattern notation of the data files.
struct PhraseCompiler {
    let language: LanguageData
    /// Normalizes pattern words (no known-word repairs: patterns are written cleanly).
    private let normalizer: TextNormalizer

    init(language: LanguageData) {
        self.language = language
        self.normalizer = TextNormalizer(language: language, knownWords: [])
    }

    /// Expands and normalizes one pattern into phrases.
    func phrases(_ pattern: String) throws(SafetyDataError) -> [[String]] {
        try PatternExpander.expand(pattern, macros: language.macros).map { words in
            words.flatMap { w -> [String] in
                if w == PhraseMatcher.numberSymbol || w == PhraseMatcher.yearSymbol { return [w] }
                return normalizer.tokens(w).filter(\.isWordLike).map(\.text)
            }
        }.filter { !$0.isEmpty }
    }

    /// A matcher over `patterns` (pattern text, payload).
    func matcher(_ patterns: [(String, Int)], skipFillers: Bool, fuzzy: Bool, soundKeys: Bool = false) throws(SafetyDataError) -> PhraseMatcher {
        var all: [(words: [String], payload: Int)] = []
        for (pattern, payload) in patterns {
            for p in try phrases(pattern) { all.append((p, payload)) }
        }
        return PhraseMatcher(
            phrases: all,
            fillers: skipFillers ? Set(language.fillers) : [],
            fuzzy: fuzzy,
            protected: Set(language.protectedWords),
            soundKeys: soundKeys
        )
    }
}
