/// Splits a token list into sentences and clauses, the scopes of the context rules.
///
/// A sentence ends at a `boundary` token. A clause also ends before a clause-break cue ("but",
/// "and now", "however"), before "and" or a comma followed by a new subject ("…, I have",
/// "… and my wife takes …"), so "no fever, I have crushing chest pain" keeps the negation in
/// the first clause.
struct ClauseMap: Sendable {
    /// Clause number of each token (non-decreasing).
    let clause: [Int]
    /// Sentence number of each token (non-decreasing).
    let sentence: [Int]

    static let subjectStarters: Set<String> = ["it", "its", "this", "that", "now", "then", "we", "there", "theres", "today"]

    init(tokens: [Token], breaks: [PhraseMatcher.Match], people: PersonLexicon) {
        var breakStarts = Set(breaks.map(\.first))
        for (i, t) in tokens.enumerated() where i + 1 < tokens.count {
            guard t.kind == .comma || t.text == "and" || t.text == "so" else { continue }
            let next = tokens[i + 1].text
            let startsSubject = Self.subjectStarters.contains(next) || {
                switch people.reference(next) {
                case .firstPerson?, .other?: return true
                default: return false
                }
            }()
            if startsSubject { breakStarts.insert(i) }
        }
        var clause: [Int] = []
        var sentence: [Int] = []
        clause.reserveCapacity(tokens.count)
        sentence.reserveCapacity(tokens.count)
        var c = 0
        var s = 0
        for (i, t) in tokens.enumerated() {
            if breakStarts.contains(i) && i > 0 { c += 1 }
            clause.append(c)
            sentence.append(s)
            if t.kind == .boundary { c += 1; s += 1 }
        }
        self.clause = clause
        self.sentence = sentence
    }
}
