/// Reads a message into clinical findings and applies the red-flag rules of
/// `Data/findings.json`: the second, rule-based half of ``EmergencyDetector``.
///
/// A finding is a concept (body site, sensation, associated sign, modifier, person, context), a
/// composite (a site and a sensation near each other in one clause: "pain … in my chest") or a
/// measure (a number read next to or inside a concept: "sugar is 45", "6 weeks old"). Concept
/// phrases are matched with one automaton pass that skips filler words and corrects
/// misspellings against the concept vocabulary. Each finding counts only when the detector's
/// context rules say it is real and happening now; a rule marked `transient` also counts what
/// has just resolved. Rules then combine findings the way the published criteria do (AHA,
/// BE-FAST, Sepsis TIME, ADA, NICE NG143, Poison Centers), so a message is recognised by what
/// it describes, not by one expected phrase.
struct ClinicalFindings: Sendable {
    /// One finding in a message: its id and token span.
    struct Finding: Sendable, Equatable {
        var id: Int
        var first: Int
        var last: Int
        var match: PhraseMatcher.Match { PhraseMatcher.Match(payload: id, first: first, last: last) }
    }

    /// A rule that matched, and the finding the alert is about (for who it happens to).
    struct Hit: Sendable {
        var rule: FindingsData.Rule
        var anchor: Finding
        /// The rule's finding told last (whose patient the animal check asks about: the
        /// earliest may be background, like "a scratch" before the signs of sepsis).
        var latest: Finding
        /// Whether the rule rests on a finding about a child or baby (the writer is then a
        /// bystander even with no person word: "my 8 month old has…").
        var aboutChild: Bool
        /// The signal-phrase categories this hit replaces (``FindingsData/Rule/overrides``,
        /// unless one of its `overridesUnless` findings is present).
        var overrides: [String]
    }

    private let matcher: PhraseMatcher
    /// Finding ids: concepts first, then composites, then measures (several measures may share
    /// an id; they share its index).
    private let names: [String]
    private let index: [String: Int]
    private let composites: [(id: Int, parts: [Int], window: Int, sentence: Bool)]
    private let measures: [(id: Int, near: Int?, inside: Int?, low: Double, high: Double)]
    private let rules: [CompiledRule]
    /// The concept that marks fiction, exam questions and role play.
    private let fiction: Int?
    /// Findings that name a child or baby (`person_…`).
    private let childFindings: Set<Int>
    /// Findings that count even when told in the past (``FindingsData/background``).
    private let background: Set<Int>
    /// States a time told after dates at their start (``FindingsData/datedStates``).
    private let datedStates: Set<Int>
    /// Concepts written as one word the phrase matcher skips as filler ("suddenly"): found by a
    /// plain token scan instead.
    private let fillerConcepts: [String: [Int]]

    /// Words that negate the word after them, inside a composite finding: the one-word negation
    /// cues of `emergency.json` ("no", "isnt", "denies", "neither", …).
    private let negators: Set<String>

    init(data: FindingsData, negators: Set<String>, compiler: PhraseCompiler) throws(SafetyDataError) {
        self.negators = negators
        var names = data.concepts.keys.sorted()
        var index: [String: Int] = [:]
        for (i, n) in names.enumerated() { index[n] = i }
        var patterns: [(String, Int)] = []
        for (i, n) in names.enumerated() {
            for p in data.concepts[n]! { patterns.append((p, i)) }
        }
        func id(_ name: String) -> Int {
            if let i = index[name] { return i }
            names.append(name)
            index[name] = names.count - 1
            return names.count - 1
        }
        func known(_ name: String, _ what: String) throws(SafetyDataError) -> Int {
            guard let i = index[name] else { throw .unknownReference("findings.json", "\(what) \(name)") }
            return i
        }
        var measures: [(id: Int, near: Int?, inside: Int?, low: Double, high: Double)] = []
        for m in data.measures {
            let near = try m.near.map { (n: String) throws(SafetyDataError) in try known(n, "concept") }
            let inside = try m.inside.map { (n: String) throws(SafetyDataError) in try known(n, "concept") }
            guard (near == nil) != (inside == nil) else { throw .unknownReference("findings.json", "measure \(m.id) needs near or inside") }
            measures.append((id(m.id), near, inside, m.atLeast ?? -.infinity, m.below ?? .infinity))
        }
        var composites: [(id: Int, parts: [Int], window: Int, sentence: Bool)] = []
        for c in data.composites {
            var parts: [Int] = []
            for p in c.all { parts.append(try known(p, "concept or measure")) }
            composites.append((id(c.id), parts, c.window, c.scope == "sentence"))
        }
        // Groups may name findings or other groups.
        var groups: [String: Set<Int>] = [:]
        func expand(_ name: String, depth: Int = 0) throws(SafetyDataError) -> Set<Int> {
            if let i = index[name] { return [i] }
            if let g = groups[name] { return g }
            guard depth < 4, let members = data.groups[name] else { throw .unknownReference("findings.json", "finding or group \(name)") }
            var out: Set<Int> = []
            for m in members { out.formUnion(try expand(m, depth: depth + 1)) }
            groups[name] = out
            return out
        }
        var rules: [CompiledRule] = []
        for r in data.rules {
            var all: [Set<Int>] = []
            for a in r.all ?? [] { all.append(try expand(a)) }
            var any: Set<Int> = []
            for a in r.any ?? [] { any.formUnion(try expand(a)) }
            var also: Set<Int> = []
            for a in r.also ?? [] { also.formUnion(try expand(a)) }
            var unless: Set<Int> = []
            for a in r.overridesUnless ?? [] { unless.formUnion(try expand(a)) }
            rules.append(CompiledRule(rule: r, all: all, any: any.sorted(), minAny: r.any == nil ? 0 : (r.minAny ?? 1), also: also.sorted(), unless: unless.sorted()))
        }
        var fillerConcepts: [String: [Int]] = [:]
        let fillers = Set(compiler.language.fillers)
        for (pattern, concept) in patterns {
            for words in try compiler.phrases(pattern) where words.count == 1 && fillers.contains(words[0]) {
                fillerConcepts[words[0], default: []].append(concept)
            }
        }
        self.fillerConcepts = fillerConcepts
        var background: Set<Int> = []
        for b in data.background ?? [] { background.insert(try known(b, "background concept")) }
        self.background = background
        var datedStates: Set<Int> = []
        for b in data.datedStates ?? [] { datedStates.insert(try known(b, "dated state")) }
        self.datedStates = datedStates
        self.matcher = try compiler.matcher(patterns, skipFillers: true, fuzzy: true)
        self.names = names
        self.index = index
        self.composites = composites
        self.measures = measures
        self.rules = rules
        self.fiction = index["frame_fiction"]
        self.childFindings = Set(names.indices.filter { names[$0].hasPrefix("person_") })
    }

    /// The words of the concept phrases (for the normalizer's known words and the audit).
    var vocabulary: Set<String> { matcher.vocabulary }

    /// The name of finding `id`.
    func name(_ id: Int) -> String { names[id] }

    /// Every finding in the message, before any context rule.
    func findings(in tokens: [Token], clauses: ClauseMap) -> [Finding] {
        var out = matcher.matches(in: tokens).map { Finding(id: $0.payload, first: $0.first, last: $0.last) }
        if !fillerConcepts.isEmpty {
            for (i, t) in tokens.enumerated() {
                for c in fillerConcepts[t.text] ?? [] { out.append(Finding(id: c, first: i, last: i)) }
            }
        }
        var byConcept: [Int: [Finding]] = [:]
        for f in out { byConcept[f.id, default: []].append(f) }
        func wordsBetween(_ a: Int, _ b: Int) -> Int {
            guard b > a + 1 else { return 0 }
            return tokens[(a + 1)..<b].reduce(0) { $0 + ($1.isWordLike ? 1 : 0) }
        }
        let conceptCount = out.count
        for m in measures {
            if let inside = m.inside {
                for f in byConcept[inside] ?? [] {
                    if let v = tokens[f.first...f.last].lazy.compactMap(\.value).first, v >= m.low, v < m.high {
                        out.append(Finding(id: m.id, first: f.first, last: f.last))
                    }
                }
            } else if let near = m.near {
                for f in byConcept[near] ?? [] {
                    let clause = clauses.clause[f.first]
                    let lo = max(0, f.first - 4)
                    let hi = min(tokens.count - 1, f.last + 5)
                    guard lo <= hi else { continue }
                    for i in lo...hi where tokens[i].kind == .number && clauses.clause[i] == clause {
                        if let v = tokens[i].value, v >= m.low, v < m.high {
                            out.append(Finding(id: m.id, first: min(i, f.first), last: max(i, f.last)))
                            break
                        }
                    }
                }
            }
        }
        // Composites may use measures ("swallowed 20 pills").
        for f in out[conceptCount...] { byConcept[f.id, default: []].append(f) }
        for c in composites {
            guard let starts = byConcept[c.parts[0]] else { continue }
            for s in starts {
                let scope = c.sentence ? clauses.sentence : clauses.clause
                let clause = scope[s.first]
                var first = s.first
                var last = s.last
                var complete = true
                var partStarts = [s.first]
                for p in c.parts.dropFirst() {
                    // The nearest match of this part in the same clause, not the same words.
                    let candidates = (byConcept[p] ?? []).filter {
                        scope[$0.first] == clause && ($0.last < s.first || $0.first > s.last)
                    }
                    guard let best = candidates.min(by: { abs($0.first - s.first) < abs($1.first - s.first) }) else {
                        complete = false
                        break
                    }
                    first = min(first, best.first)
                    last = max(last, best.last)
                    partStarts.append(best.first)
                }
                // "her face isn't drooping", "kicking lots, no bleeding": a later part negated
                // right before it is not a finding of the whole (an earlier part's negation is the
                // context rules' to read).
                if complete, partStarts.contains(where: { $0 > first && negators.contains(tokens[$0 - 1].text) }) {
                    complete = false
                }
                if complete && wordsBetween(first, last) + 2 <= c.window + 1 + c.parts.count {
                    out.append(Finding(id: c.id, first: first, last: last))
                }
            }
        }
        return out
    }

    /// Where each lasting state ends ("c-section", "had surgery"): a time told right after one
    /// dates that state, not what follows it (``EmergencyDetector/Context/timeAnchors``).
    func datedStateEnds(_ found: [Finding]) -> [Int] {
        found.filter { datedStates.contains($0.id) }.map(\.last)
    }

    /// Whether the message frames itself as fiction, an exam question or role play.
    /// A frame that is negated ("not writing a story this time, this is real") is none.
    /// A frame frames its own sentence and, told in the first sentence, the whole message ("For my
    /// novel: …"); one told later beside an unrelated errand ("…clashes with my grandson's school
    /// play") does not frame what another sentence says ("…pressure in my chest going into my jaw").
    func isFiction(_ found: [Finding], isNegated: (PhraseMatcher.Match) -> Bool, sentenceOf: (Int) -> Int) -> Bool {
        guard let fiction else { return false }
        let frames = found.filter { $0.id == fiction && !isNegated($0.match) }
        guard !frames.isEmpty else { return false }
        let first = sentenceOf(0)
        let told = Set(found.filter { $0.id != fiction }.map { sentenceOf($0.first) })
        return frames.contains { let s = sentenceOf($0.first); return s == first || told.contains(s) }
    }

    /// The first rule whose findings are all happening now, in data order.
    ///
    /// `isCurrent(match, resolvedCounts, history)` is the detector's context rule.
    func evaluate(_ found: [Finding], isCurrent: (PhraseMatcher.Match, Bool, EmergencyDetector.HistoryMode) -> Bool) -> Hit? {
        guard !found.isEmpty else { return nil }
        // Most messages satisfy no rule even before context: stop there (the hot path).
        let raw = Set(found.map(\.id))
        func satisfiable(_ r: CompiledRule) -> Bool {
            r.all.allSatisfy { !$0.isDisjoint(with: raw) }
                && (r.minAny == 0 || r.any.contains(where: raw.contains))
                && (r.also.isEmpty || r.also.contains(where: raw.contains))
        }
        let candidates = rules.filter(satisfiable)
        guard !candidates.isEmpty else { return nil }
        var wanted: Set<Int> = []
        for r in candidates { r.all.forEach { wanted.formUnion($0) }; wanted.formUnion(r.any); wanted.formUnion(r.also); wanted.formUnion(r.unless) }
        // Current findings by id, each span once, read three ways.
        var strict: [Int: [Finding]] = [:]
        var loose: [Int: [Finding]] = [:]
        var pastVerb: [Int: [Finding]] = [:]
        let needsPastVerb = candidates.contains { $0.rule.pastVerbCounts == true }
        func add(_ f: Finding, to table: inout [Int: [Finding]]) {
            if !(table[f.id] ?? []).contains(where: { $0.first == f.first }) { table[f.id, default: []].append(f) }
        }
        for f in found where wanted.contains(f.id) {
            let mode: EmergencyDetector.HistoryMode = background.contains(f.id) ? .counts : .strict
            if isCurrent(f.match, true, mode) { add(f, to: &loose) }
            if isCurrent(f.match, false, mode) { add(f, to: &strict) }
            if needsPastVerb, isCurrent(f.match, false, mode == .counts ? .counts : .verbCounts) { add(f, to: &pastVerb) }
        }
        for r in candidates {
            let present = r.rule.transient == true ? loose : r.rule.pastVerbCounts == true ? pastVerb : strict
            var anchor: Finding?
            var latest: Finding?
            func note(_ f: Finding) {
                if anchor == nil || f.first < anchor!.first { anchor = f }
                if latest == nil || f.last > latest!.last { latest = f }
            }
            var ok = true
            for set in r.all {
                guard let f = set.lazy.compactMap({ present[$0]?.first }).first else { ok = false; break }
                note(f)
            }
            guard ok else { continue }
            // `minAny` counts separate findings: two farewell phrases are two signs.
            let anyHits = r.any.flatMap { present[$0] ?? [] }
            guard anyHits.count >= r.minAny else { continue }
            anyHits.forEach(note)
            if !r.also.isEmpty {
                guard r.also.contains(where: { present[$0] != nil }) else { continue }
            }
            if let anchor, let latest {
                let ids = r.all.flatMap { $0 } + r.any + r.also
                let aboutChild = ids.contains { present[$0] != nil && childFindings.contains($0) }
                let cancelled = r.unless.contains { strict[$0] != nil || loose[$0] != nil }
                return Hit(rule: r.rule, anchor: anchor, latest: latest, aboutChild: aboutChild, overrides: cancelled ? [] : r.rule.overrides ?? [])
            }
        }
        return nil
    }
}

extension ClinicalFindings {
    /// A red-flag rule with its groups expanded to finding ids. A class, so that picking the
    /// rules a message can satisfy (every message with a finding does) copies a reference, not
    /// the rule's strings and lists.
    final class CompiledRule: Sendable {
        let rule: FindingsData.Rule
        /// Each entry: the findings of which one must be present.
        let all: [Set<Int>]
        let any: [Int]
        let minAny: Int
        let also: [Int]
        /// Findings that cancel the rule's `overrides`.
        let unless: [Int]

        init(rule: FindingsData.Rule, all: [Set<Int>], any: [Int], minAny: Int, also: [Int], unless: [Int]) {
            self.rule = rule
            self.all = all
            self.any = any
            self.minAny = minAny
            self.also = also
            self.unless = unless
        }
    }
}
