extension EmergencyDetector {
    /// How a past telling counts for a finding.
    enum HistoryMode: Sendable {
        /// History ("had", "in 2019", "after my …") means not now.
        case strict
        /// A past-tense verb alone still counts ("my 2-year-old had a seizure"); a date or "years
        /// ago" does not.
        case verbCounts
        /// History counts (background: "had a UTI for a few days", "gave birth last week").
        case counts
    }

    /// The context rules for one message: which signals are happening now, and to whom.
    struct Context {
        let tokens: [Token]
        let clauses: ClauseMap
        let people: PersonLexicon
        private let cues: [[PhraseMatcher.Match]]

        /// Words after a negation cue that it still reaches.
        static let negationReach = 6
        /// Words after a "had"-type cue that it still reaches ("had a bad heart attack").
        static let historyVerbReach = 3
        /// Words after a signal that an information cue may follow ("stroke symptoms").
        static let informationAfterReach = 3
        /// Words that end the reach of a "had"-type cue ("had a seizure and won't wake up").
        static let scopeEnders: Set<String> = ["and", "then", "but", "now"]
        /// Words that make the person after them hypothetical ("how do I know if I'm…").
        static let hypotheticalMarkers: Set<String> = ["if", "whether", "when"]

        init(tokens: [Token], cues found: [PhraseMatcher.Match], people: PersonLexicon) {
            self.tokens = tokens
            self.people = people
            var cues = Array(repeating: [PhraseMatcher.Match](), count: EmergencyCue.allCases.count)
            for m in found { cues[m.payload].append(m) }
            self.cues = cues
            self.clauses = ClauseMap(tokens: tokens, breaks: cues[EmergencyCue.allCases.firstIndex(of: .clauseBreak)!], people: people)
        }

        /// The kinds of cue the message has, for the learned reader.
        func cueKinds() -> [EmergencyCue] {
            EmergencyCue.allCases.enumerated().filter { !cues[$0.offset].isEmpty }.map(\.element)
        }

        private func cues(_ kind: EmergencyCue) -> [PhraseMatcher.Match] {
            cues[EmergencyCue.allCases.firstIndex(of: kind)!]
        }

        private func overlaps(_ a: PhraseMatcher.Match, _ b: PhraseMatcher.Match) -> Bool {
            a.first <= b.last && b.first <= a.last
        }

        /// Word tokens strictly between two token indices.
        private func words(between a: Int, _ b: Int) -> Int {
            guard b > a + 1 else { return 0 }
            return tokens[(a + 1)..<b].reduce(0) { $0 + ($1.isWordLike ? 1 : 0) }
        }

        /// Whether the signal at `m` describes something happening now.
        ///
        /// With `resolvedCounts`, a symptom that has just gone away still counts ("it lasted ten
        /// minutes and went away": for stroke, a transient attack is still an emergency).
        ///
        /// `history` says how a past telling counts (``HistoryMode``).
        func isCurrent(_ m: PhraseMatcher.Match, allowJest: Bool, resolvedCounts: Bool = false, history: HistoryMode = .strict) -> Bool {
            let clause = clauses.clause[m.first]
            func inClause(_ x: PhraseMatcher.Match) -> Bool {
                clauses.clause[x.first] == clause || clauses.clause[x.last] == clause
            }
            let uncertain = cues(.uncertain)
            func cancelled(_ x: PhraseMatcher.Match) -> Bool { uncertain.contains { overlaps($0, x) } }

            // Negation before the signal, within reach and in the same clause.
            for n in cues(.negation) where n.last < m.first && clauses.clause[n.last] == clause && !cancelled(n) {
                if words(between: n.last, m.first) <= Self.negationReach { return false }
            }
            for p in cues(.postNegation) where !resolvedCounts && p.first > m.last && clauses.clause[p.first] == clause {
                if words(between: m.last, p.first) <= 3 { return false }
            }
            let recent = cues(.recent).contains { inClause($0) && !overlaps($0, m) }

            if !recent {
                let historyVerb = cues(.historyVerb).contains {
                    $0.last < m.first && clauses.clause[$0.last] == clause && words(between: $0.last, m.first) <= Self.historyVerbReach
                        && !tokens[($0.last + 1)..<m.first].contains { Self.scopeEnders.contains($0.text) }
                }
                let historyTime = cues(.historyTime).contains { inClause($0) }
                // "after my heart attack", "recovering from a stroke": a past event named as such.
                let pastEvent = cues(.pastEvent).contains {
                    $0.last < m.first && clauses.clause[$0.last] == clause && words(between: $0.last, m.first) <= Self.historyVerbReach
                }
                let past: Bool
                switch history {
                case .strict: past = historyVerb || historyTime || pastEvent
                case .verbCounts: past = historyTime || pastEvent
                case .counts: past = false
                }
                if past {
                    // "…and I'm feeling that way again": the past is back.
                    let back = cues(.recurrence).contains { $0.first > m.last }
                    if !back { return false }
                }
                for i in cues(.information) where inClause(i) && i.first < m.first {
                    if !specificPerson(between: i.last, m.first) { return false }
                }
                for i in cues(.informationAfter) where inClause(i) && i.first > m.last {
                    if words(between: m.last, i.first) < Self.informationAfterReach { return false }
                }
                for h in cues(.hypothetical) where inClause(h) && h.first < m.first && !cancelled(h) {
                    return false
                }
                if cues(.habitual).contains(where: inClause) { return false }
            }
            if allowJest && cues(.jest).contains(where: inClause) { return false }
            // "my chest hurts when I cough", "sore from the gym": a benign cause named with it.
            if cues(.benignCause).contains(where: inClause) { return false }
            return true
        }

        /// Whether a specific person (the writer or someone they name) is mentioned strictly
        /// between two tokens, other than hypothetically ("if I'm…").
        private func specificPerson(between a: Int, _ b: Int) -> Bool {
            guard b > a + 1 else { return false }
            for i in (a + 1)..<b {
                switch people.reference(tokens[i].text) {
                case .firstPerson?, .other?:
                    if i > 0 && Self.hypotheticalMarkers.contains(tokens[i - 1].text) { continue }
                    return true
                default:
                    continue
                }
            }
            return false
        }

        /// The person the signal at `m` happens to: `nil` for the writer, else the other
        /// person's gender. Looks inside the match ("…kill herself"), then back to the nearest
        /// person word in the message, then forward within the clause ("blood spurting from his
        /// leg").
        func experiencer(of m: PhraseMatcher.Match) -> Gender? {
            func classify(_ i: Int) -> (found: Bool, gender: Gender?) {
                switch people.reference(tokens[i].text) {
                case .firstPerson?: return (true, nil)
                case .other(let g)?: return (true, g)
                default: return (false, nil)
                }
            }
            var inside: Gender?
            var insideFirst = false
            for i in m.first...m.last {
                let r = classify(i)
                if r.found, let g = r.gender { inside = g } else if r.found { insideFirst = true }
            }
            if let g = inside { return g }
            if insideFirst { return nil }
            var i = m.first - 1
            while i >= 0 {
                let r = classify(i)
                if r.found { return r.gender }
                i -= 1
            }
            let clause = clauses.clause[m.last]
            var j = m.last + 1
            while j < tokens.count && clauses.clause[j] == clause {
                let r = classify(j)
                if r.found { return r.gender }
                j += 1
            }
            return nil
        }
    }
}
