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
        /// Words that end a negation's reach: a reason or a contrast begins a new statement
        /// ("didn't sleep because my chest was hurting", "no fever but now she's floppy").
        static let negationScopeEnders: Set<String> = ["as", "because", "cause", "cuz", "coz", "cos", "since", "so", "but", "although", "though", "until", "till"]

        /// Words that make the person after them hypothetical ("how do I know if I'm…").
        static let hypotheticalMarkers: Set<String> = ["if", "whether", "when"]

        /// Last tokens of the lasting states (``ClinicalFindings/datedStateEnds(_:)``): "c-section
        /// 1 week ago, fever 39" dates the operation, not the fever after it.
        var timeAnchors: [Int] = []

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

        /// Whether a negation cue reaches `m` from before it in its clause ("not writing a story").
        func isNegated(_ m: PhraseMatcher.Match) -> Bool {
            let clause = clauses.clause[m.first]
            let uncertain = cues(.uncertain)
            return cues(.negation).contains { n in
                n.last < m.first && clauses.clause[n.last] == clause && !uncertain.contains { overlaps($0, n) }
                    && words(between: n.last, m.first) <= Self.negationReach
                    // "didn't fancy dinner as my chest has been hurting": a reason ends the negation.
                    && !tokens[(n.last + 1)..<m.first].contains { Self.negationScopeEnders.contains($0.text) }
            }
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
            if isNegated(m) { return false }
            for p in cues(.postNegation) where !resolvedCounts && p.first > m.last && clauses.clause[p.first] == clause {
                if words(between: m.last, p.first) <= 3 { return false }
            }
            let recent = cues(.recent).contains { inClause($0) && !overlaps($0, m) }

            if !recent {
                let historyVerb = cues(.historyVerb).contains {
                    $0.last < m.first && clauses.clause[$0.last] == clause && words(between: $0.last, m.first) <= Self.historyVerbReach
                        && !tokens[($0.last + 1)..<m.first].contains { Self.scopeEnders.contains($0.text) }
                }
                // A time told right after a background finding dates that finding only: what
                // is told after it is still now ("gave birth 5 days ago, now a fever of 39").
                let historyTime = cues(.historyTime).contains { t in
                    inClause(t) && !(t.last < m.first && timeAnchors.contains { $0 < t.first && words(between: $0, t.first) <= 1 })
                }
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
            // "if I ever feel that way again", "in case my husband has a heart attack someday":
            // a condition that is plainly not now, whatever else sounds recent ("again", "keep").
            for h in cues(.strongHypothetical) where inClause(h) && h.first < m.first && !cancelled(h) {
                return false
            }
            if allowJest && cues(.jest).contains(where: inClause) { return false }
            // "Are seizures hereditary?", "Can you have anaphylaxis without hives?": a question
            // about the condition in general, with nobody it is happening to.
            if allowJest && inGeneralQuestion(m) { return false }
            // "If I ever get stung and my throat swells, do I use the EpiPen first?": a condition
            // asked about, not a sign happening.
            if allowJest && inConditionalQuestion(m) { return false }
            // "my chest hurts when I cough", "sore from the gym": a benign cause named with it.
            if cues(.benignCause).contains(where: inClause) { return false }
            return true
        }

        /// Whether the event at `m` was already seen to: it is told before a past assessment by
        /// professionals ("…fainted at church, paramedics checked him over", "they said it was
        /// muscular", "was discharged") that does not send the patient on for care ("…checked
        /// her over and said to call 911"). What professionals did or reported ("gave him
        /// naloxone", "said her blood pressure is low") is no assessment. Whatever is told after
        /// the assessment is assessed as usual ("…sent him home, now he can't talk").
        func alreadyAssessed(_ m: PhraseMatcher.Match) -> Bool {
            cues(.assessed).contains { a in
                m.last < a.first
                    && !tokens[(a.last + 1)..<min(tokens.count, a.last + 10)].contains { Self.onwardCare.contains($0.text) }
            }
        }

        /// Whether the event at `m` is over and told as such: set on an earlier day ("on Friday",
        /// "last night", "over the weekend"; "since yesterday" is ongoing and does not count) and
        /// followed by its outcome ("has been fine since", "turned out to be reflux", "back to
        /// normal", "came home today"). Whatever is told after the outcome is assessed as usual
        /// ("…fine since, but now she can't lift her arm").
        func settledEarlier(_ m: PhraseMatcher.Match) -> Bool {
            guard let outcome = cues(.settled).first(where: { $0.first > m.last }) else { return false }
            return cues(.pastDay).contains { day in
                day.first < outcome.first && !(day.first > 0 && Self.ongoingMarkers.contains(tokens[day.first - 1].text))
            }
        }

        /// Words before a day that make it the start of something still going on ("since Monday").
        static let ongoingMarkers: Set<String> = ["since", "from", "till", "until"]

        /// Words soon after an assessment that send the patient on for care.
        static let onwardCare: Set<String> = [
            "call", "go", "come", "ring", "phone", "911", "999", "112", "ambulance", "emergency", "er", "ed", "urgent",
            "immediately", "asap", "straight", "rush", "head", "admitted", "admit", "keep", "keeping", "coming", "on",
        ]

        /// The first and last token of the sentence holding `m` (between boundary tokens).
        private func sentence(around m: PhraseMatcher.Match) -> (start: Int, end: Int) {
            var start = m.first
            while start > 0 && tokens[start - 1].kind != .boundary { start -= 1 }
            var end = m.last
            while end + 1 < tokens.count && tokens[end + 1].kind != .boundary { end += 1 }
            return (start, end)
        }

        /// Words that open a condition ("if", "suppose"); "say" only at a sentence's start.
        static let conditionOpeners: Set<String> = ["if", "suppose", "supposing", "imagine", "hypothetically", "case"]
        /// Words that ask, after a condition ("…, what should I do?").
        static let askingWords: Set<String> = [
            "would", "should", "do", "does", "is", "can", "could", "what", "who", "how", "when", "which", "will", "whats",
        ]

        /// Whether the signal at `m` sits inside a condition that the same sentence goes on to
        /// ask about: a condition opener before it, a question word after it, no sentence
        /// boundary between, and nothing said to be happening now in the sentence ("if she's
        /// having a stroke right now what do I do" is happening).
        func inConditionalQuestion(_ m: PhraseMatcher.Match) -> Bool {
            let (start, end) = sentence(around: m)
            let opened = (start..<m.first).contains { k in
                Self.conditionOpeners.contains(tokens[k].text) || (k == start && tokens[k].text == "say")
            }
            guard opened, m.last < end, tokens[(m.last + 1)...end].contains(where: { Self.askingWords.contains($0.text) }) else { return false }
            return !cues(.recent).contains { $0.first >= start && $0.last <= end }
        }

        /// Words that open a question.
        static let questionOpeners: Set<String> = [
            "can", "could", "does", "do", "is", "are", "why", "how", "what", "whats", "which", "should", "will", "would",
        ]
        /// Words that make a question about what is happening, or a call for help, rather than
        /// one about a condition in general ("is this a stroke", "can someone help").
        static let situationWords: Set<String> = [
            "this", "these", "thats", "happening", "help", "please", "pls", "plz", "hurry", "urgent", "emergency",
            "asap", "quick", "quickly", "now", "rn", "again", "still", "here",
            // A question about what would be lethal is a warning sign, never general knowledge.
            "enough", "lethal", "fatal", "kill", "die", "dying", "dead", "wake",
        ]
        /// Pronouns that, in a general question, name nobody in particular ("why do they…").
        static let impersonalPronouns: Set<String> = ["they", "them", "their", "theyre", "themselves"]
        /// Articles that make the person after them anyone ("a newborn", "an adult").
        static let indefiniteArticles: Set<String> = ["a", "an", "any"]

        /// Whether the signal at `m` sits in a question about a condition in general: a sentence
        /// that opens with a question word, names no particular person (the writer, someone they
        /// know, or a pronoun for either; "a newborn", "they" and "you" are anyone) and says
        /// nothing of a situation now or a call for help.
        func inGeneralQuestion(_ m: PhraseMatcher.Match) -> Bool {
            let (start, end) = sentence(around: m)
            guard let opener = tokens[start...end].first(where: { $0.isWordLike }), Self.questionOpeners.contains(opener.text) else { return false }
            for i in start...end {
                let word = tokens[i].text
                if Self.situationWords.contains(word) { return false }
                switch people.reference(word) {
                case .firstPerson?:
                    return false
                case .other?:
                    if Self.impersonalPronouns.contains(word) { continue }
                    if i > start && Self.indefiniteArticles.contains(tokens[i - 1].text) { continue }
                    return false
                default:
                    continue
                }
            }
            return true
        }

        /// Whether the signal at `m` happens to an animal: the nearest person or animal named
        /// before it (else after it in its clause) is an animal that is not the cause ("my cat
        /// is having a seizure", "the horse cut his leg"), reached through a pronoun only when
        /// no person is named before it ("my son was walking the dog when he collapsed" is
        /// about the son). An animal that bit, stung or kicked is the cause, not the patient.
        func happensToAnimal(_ m: PhraseMatcher.Match, animals: Set<String>) -> Bool {
            guard !animals.isEmpty else { return false }
            func isCause(_ k: Int) -> Bool {
                if k + 1 < tokens.count, Self.animalActs.contains(tokens[k + 1].text) { return true }
                return tokens[max(0, k - 3)..<k].contains { Self.causeMarkers.contains($0.text) }
            }
            func personNamed(before k: Int) -> Bool {
                tokens[0..<k].contains { t in
                    switch people.reference(t.text) {
                    case .firstPerson?: return !Self.possessives.contains(t.text)
                    case .other?: return !Self.pronouns.contains(t.text)
                    default: return false
                    }
                }
            }
            var throughPronoun = false
            // nil: keep looking; true: an animal; false: a person.
            func look(_ k: Int) -> Bool? {
                let word = tokens[k].text
                if animals.contains(word) {
                    // The cause, or a likeness ("cries like a kitten").
                    if isCause(k) || tokens[max(0, k - 2)..<k].contains(where: { Self.likeness.contains($0.text) }) { return nil }
                    // "my son and our dog both ate…": the person too.
                    if tokens[max(0, k - 4)..<k].contains(where: { Self.coordinators.contains($0.text) }) && personNamed(before: k) { return false }
                    return !throughPronoun || !personNamed(before: k)
                }
                switch people.reference(word) {
                case .firstPerson?:
                    // "my cat": the owner; "my throat": the patient.
                    let owns = Self.possessives.contains(word) && k + 1 < tokens.count && animals.contains(tokens[k + 1].text)
                    return owns ? nil : false
                case .other?:
                    if Self.pronouns.contains(word) { throughPronoun = true; return nil }
                    return false
                default:
                    return nil
                }
            }
            var k = m.last
            while k >= 0 {
                if let found = look(k) { return found }
                k -= 1
            }
            let clause = clauses.clause[m.last]
            k = m.last + 1
            while k < tokens.count && clauses.clause[k] == clause {
                if let found = look(k) { return found }
                k += 1
            }
            return false
        }

        /// Words after an animal that make it the cause ("the dog bit…", "cat hair").
        static let animalActs: Set<String> = [
            "bit", "bite", "bites", "bitten", "attacked", "attacks", "mauled", "scratched", "scratch", "kicked", "trampled",
            "bucked", "stung", "jumped", "knocked", "threw", "charged", "hair", "dander", "fur", "saliva",
        ]
        /// Words that join an animal to a person as patients together.
        static let coordinators: Set<String> = ["and", "with", "plus", "both"]
        /// Words shortly before an animal that make it a likeness, not a patient.
        static let likeness: Set<String> = ["like", "as"]
        /// Words shortly before an animal that make it the cause ("bitten by a dog", "allergic to cats").
        static let causeMarkers: Set<String> = ["by", "allergic", "allergy", "allergies"]
        /// Third-person pronouns, which may stand for an animal.
        static let pronouns: Set<String> = [
            "he", "him", "his", "himself", "hes", "she", "her", "hers", "herself", "shes", "they", "them", "their", "theyre",
            "themselves", "themself",
        ]
        /// First-person possessives, which own an animal rather than name the patient ("my cat").
        static let possessives: Set<String> = ["my", "mine", "our", "ours"]

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
