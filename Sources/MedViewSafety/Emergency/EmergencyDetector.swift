import Foundation

/// Detects an emergency happening now in a patient's message, before the model is called.
///
/// One pass of a token automaton finds the signal phrases (with misspellings corrected against
/// the key-term index), a second the context cues; then each signal is kept only if its context
/// says it is happening now:
/// - not negated ("no chest pain", "I'm not having trouble breathing": a negation cue up to six
///   words before it in the same clause, or "went away" right after);
/// - not history ("had a heart attack in 2010", "last year I overdosed"), unless the clause
///   also says it is recent ("just", "an hour ago") or the message says it is back ("feeling that
///   way again");
/// - not a question for information ("what are the signs of a stroke?") or a hypothetical
///   ("if I ever get chest pain"), unless a specific person comes between the question and
///   the signal ("what do I do, my dad's face is drooping");
/// - not an idiom ("this headache is killing me", "heart attack prices", "dying laughing") and,
///   except for suicide, not in a joking clause ("lol I can't breathe").
/// Combinations need all their parts ("hit his head" + "keeps throwing up"; "pregnant" +
/// "bleeding"). The person having the emergency is found from the nearest person word, so
/// "my dad's face is drooping" gets bystander guidance ("Call 911 for him now").
///
/// Built once from `Data/emergency.json` and `Data/language.json`; ``assess(_:)`` is pure and
/// runs in tens of microseconds for a typical message.
public struct EmergencyDetector: Sendable {
    /// The detector built from the bundled data. Loading cannot fail at run time unless the
    /// package was built without its resources, which the tests rule out.
    public static let shared: EmergencyDetector = {
        do {
            return try EmergencyDetector()
        } catch {
            preconditionFailure("MedViewSafety: bundled emergency data failed to load: \(error)")
        }
    }()

    private let data: EmergencyData
    private let normalizer: TextNormalizer
    private let signals: PhraseMatcher
    private let cues: PhraseMatcher
    private let people: PersonLexicon
    private let categoryIndex: [String: Int]
    private let priority: [String: Int]
    private let signalIndex: [String: Int]
    private let findings: ClinicalFindings
    /// Animal words, and the words that name a person (not a pronoun, which pets share).
    private let animalWords: Set<String>
    private let personWords: Set<String>
    /// Corrects misspelled words to the detector's vocabulary for the learned reader's features.
    private let spelling: FuzzyIndex
    /// The learned reader (``EmergencyReader``), the third reading; `nil` when none is given.
    private let reader: EmergencyReader?

    /// Loads the bundled data and builds the automata.
    public init() throws(SafetyDataError) {
        try self.init(reader: SafetyData.decode(EmergencyReader.Model.self, from: "reader.json"))
    }

    /// The bundled rules without the learned reader (for the per-layer figures and the reader's
    /// training, which must not see its own output).
    public static func rulesOnly() throws(SafetyDataError) -> EmergencyDetector {
        try EmergencyDetector(reader: nil)
    }

    /// The bundled rules with this reader model (`nil`: none).
    init(reader model: EmergencyReader.Model?) throws(SafetyDataError) {
        try self.init(
            data: SafetyData.decode(EmergencyData.self, from: "emergency.json"),
            findings: SafetyData.decode(FindingsData.self, from: "findings.json"),
            language: SafetyData.language(),
            reader: model.map { m throws(SafetyDataError) in try EmergencyReader(model: m) }
        )
    }

    init(data: EmergencyData, findings: FindingsData, language: LanguageData, reader: EmergencyReader? = nil) throws(SafetyDataError) {
        self.reader = reader
        self.data = data
        let compiler = PhraseCompiler(language: language)
        // One-word negation cues negate the next part of a composite finding ("face isnt drooping").
        let negators = Set((data.cues[EmergencyCue.negation.rawValue] ?? []).filter { $0.allSatisfy(\.isLetter) })
        self.findings = try ClinicalFindings(data: findings, negators: negators, compiler: compiler)
        var categoryIndex: [String: Int] = [:]
        for (i, c) in data.categories.enumerated() { categoryIndex[c.id] = i }
        var signalIndex: [String: Int] = [:]
        var patterns: [(String, Int)] = []
        for (i, s) in data.signals.enumerated() {
            signalIndex[s.id] = i
            if let c = s.category, categoryIndex[c] == nil { throw .unknownReference("emergency.json", "category \(c)") }
            for p in s.patterns { patterns.append((p, i)) }
        }
        for (i, p) in data.idioms.enumerated() { patterns.append((p, data.signals.count + i)) }
        for combo in data.combinations {
            if categoryIndex[combo.category] == nil { throw .unknownReference("emergency.json", "category \(combo.category)") }
            for id in combo.all + (combo.absorbs ?? []) where signalIndex[id] == nil { throw .unknownReference("emergency.json", "signal \(id)") }
        }
        var cuePatterns: [(String, Int)] = []
        for (i, kind) in EmergencyCue.allCases.enumerated() {
            for p in data.cues[kind.rawValue] ?? [] { cuePatterns.append((p, i)) }
        }
        for key in data.cues.keys where EmergencyCue(rawValue: key) == nil {
            throw .unknownReference("emergency.json", "cue kind \(key)")
        }
        self.signals = try compiler.matcher(patterns, skipFillers: true, fuzzy: true)
        self.cues = try compiler.matcher(cuePatterns, skipFillers: false, fuzzy: false)
        self.normalizer = TextNormalizer(
            language: language,
            knownWords: signals.vocabulary.union(cues.vocabulary).union(self.findings.vocabulary).union(language.protectedWords)
        )
        self.spelling = FuzzyIndex(terms: signals.vocabulary.union(self.findings.vocabulary), protected: Set(language.protectedWords))
        self.people = PersonLexicon(language.people)
        self.animalWords = Set(language.animals ?? [])
        let pronouns = Context.pronouns.union(["my", "mine", "id", "ill"])
        let p = language.people
        self.personWords = Set(p.male + p.female + p.neutral + p.firstPerson).subtracting(pronouns)
        self.categoryIndex = categoryIndex
        self.signalIndex = signalIndex
        var priority: [String: Int] = [:]
        for (i, c) in data.priority.enumerated() { priority[c] = i }
        self.priority = priority
        for r in findings.rules where categoryIndex[r.category] == nil {
            throw .unknownReference("findings.json", "category \(r.category)")
        }
    }

    /// The words the signal patterns use, for the vocabulary audit.
    var signalVocabulary: Set<String> { signals.vocabulary }
    /// The words of the finding concepts, for the vocabulary audit.
    var findingsVocabulary: Set<String> { findings.vocabulary }

    /// The emergency the message describes as happening now, or `nil`.
    ///
    /// Two readings of one token list: the signal phrases (a single phrase that is enough on
    /// its own, like "I can't breathe"), then the clinical findings and the red-flag rules that
    /// combine them (``ClinicalFindings``). A message framed as fiction, an exam question or role
    /// play gets no alert, except the writer's own suicidal thoughts.
    public func assess(_ message: String) -> EmergencyAssessment? {
        let tokens = normalizer.tokens(message)
        if isAboutAnimal(tokens) { return nil }
        let (context, found, read) = reading(tokens)
        let signals = assessSignals(tokens: tokens, found: found, context: context)
        let byRules = assessFindings(read, context: context)
        var result = signals ?? byRules?.assessment
        // A rule that explains the signal better wins ("chest pressure, left arm tingling").
        if let s = signals, let f = byRules, f.overrides.contains(s.category) {
            result = f.assessment
        }
        if let result, isFiction(read, context), !(result.category == "suicide" && !result.isBystander) {
            return nil
        }
        if result == nil, let reader,
           let category = reader.emergency(rows: readerRows(reader, tokens: tokens, context: context, read: read)),
           category == "suicide" || !isFiction(read, context) {
            return assessment(category: category, bystander: experiencer(tokens: tokens, context: context))
        }
        return result
    }

    /// What the learned reader sees in a message (``EmergencyReader``): the detector's own
    /// reading of it, as feature names. Public for the reader's training script
    /// (`medview safety features`), which must see exactly what the detector computes.
    ///
    /// - `w:` each word as normalized (abbreviations expanded, letter runs collapsed), and the
    ///   vocabulary word a misspelling corrects to; `w:<num>` for numbers;
    /// - `b:` each pair of adjacent words within a clause;
    /// - `c:` the letter trigrams of each word with its edges marked (`<ki`, `kil`, `il>`), so
    ///   spellings nobody listed still share most of their features;
    /// - `f:` each clinical finding the context rules count as happening now, `g:` each one
    ///   they do not (negated, past, hypothetical, joking); `f2:` a finding counted twice or
    ///   more (two weak warning signs are not one); `n:0`, `n:1`, `n:2+` how many kinds of
    ///   finding are happening now;
    /// - `k:` each kind of context cue present (negation, history, information, fiction, …);
    /// - `p:self`, `p:other`: whether the writer or someone else is named.
    public func features(of message: String) -> [String] {
        let tokens = normalizer.tokens(message)
        let (context, _, read) = reading(tokens)
        return features(tokens: tokens, context: context, read: read).sorted()
    }

    private func features(tokens: [Token], context: Context, read: [ClinicalFindings.Finding]) -> Set<String> {
        var out: Set<String> = []
        forEachFeature(tokens: tokens, context: context, read: read) { out.insert($0) }
        return out
    }

    /// The learned reader and its rows for the message's features, as ``assess(_:)`` reads them
    /// (`nil` without a reader; tests compare it with ``features(of:)``).
    func readerRows(of message: String) -> (reader: EmergencyReader, rows: [Int])? {
        guard let reader else { return nil }
        let tokens = normalizer.tokens(message)
        let (context, _, read) = reading(tokens)
        return (reader, readerRows(reader, tokens: tokens, context: context, read: read))
    }

    /// The rows of the reader's weights for the message's features (``features(of:)``), each once,
    /// in ascending order: each feature is looked up by name once, without collecting the names.
    private func readerRows(_ reader: EmergencyReader, tokens: [Token], context: Context, read: [ClinicalFindings.Finding]) -> [Int] {
        var rows: [Int] = []
        forEachFeature(tokens: tokens, context: context, read: read) { feature in
            if let row = reader.row(of: feature) { rows.append(row) }
        }
        rows.sort()
        var kept = 0
        for row in rows where kept == 0 || rows[kept - 1] != row {
            rows[kept] = row
            kept += 1
        }
        rows.removeLast(rows.count - kept)
        return rows
    }

    /// Hands every feature of the message to `emit`, some more than once (``features(of:)``).
    private func forEachFeature(tokens: [Token], context: Context, read: [ClinicalFindings.Finding], _ emit: (String) -> Void) {
        var previous: String?
        for t in tokens {
            guard t.isWordLike else { previous = nil; continue }
            let word = t.kind == .number ? PhraseMatcher.numberSymbol : t.text
            emit("w:" + word)
            if t.kind == .word {
                if let fixed = spelling.correct(word) { emit("w:" + fixed) }
                let letters = Array(("<" + word + ">").unicodeScalars)
                if letters.count >= 5 {
                    for i in 0...(letters.count - 3) {
                        emit(String(prefix: "c:", scalars: letters[i..<(i + 3)]))
                    }
                }
                switch people.reference(word) {
                case .firstPerson?: emit("p:self")
                case .other?: emit("p:other")
                default: break
                }
            }
            if let previous { emit("b:" + previous + " " + word) }
            previous = word
        }
        var current: [String: Int] = [:]
        for f in read {
            let name = findings.name(f.id)
            if context.isCurrent(f.match, allowJest: true) {
                emit("f:" + name)
                current[name, default: 0] += 1
            } else {
                emit("g:" + name)
            }
        }
        for (name, count) in current where count > 1 { emit("f2:" + name) }
        emit("n:" + (current.isEmpty ? "0" : current.count == 1 ? "1" : "2+"))
        for kind in context.cueKinds() { emit("k:" + kind.rawValue) }
    }

    /// Who a reader's alert is about: the person named last in the message, looking back from
    /// its end (`nil` for the writer or no one) — the signal rules' reading of a signal that
    /// comes after the person, with the whole message as the signal.
    private func experiencer(tokens: [Token], context: Context) -> Gender? {
        guard !tokens.isEmpty else { return nil }
        return context.experiencer(of: PhraseMatcher.Match(payload: 0, first: tokens.count - 1, last: tokens.count - 1))
    }

    /// Whether the message is about an animal only: an animal word ("my dog", "our puppy", "the
    /// horse") and no word for a person — neither the writer ("I", "me") nor anyone else ("my
    /// son", "a friend"). Pronouns do not count: owners call their pets "he" and "she". "the dog
    /// bit me and I can't breathe" is about the writer and is assessed as usual.
    func isAboutAnimal(_ tokens: [Token]) -> Bool {
        guard !animalWords.isEmpty, tokens.contains(where: { animalWords.contains($0.text) }) else { return false }
        // An animal that bit, scratched or kicked someone is the cause, not the patient.
        return !tokens.contains { personWords.contains($0.text) || Self.animalAgentWords.contains($0.text) }
    }

    static let animalAgentWords: Set<String> = [
        "bit", "bite", "bites", "biting", "bitten", "attacked", "attack", "mauled", "scratched", "kicked", "trampled", "bucked",
    ]

    /// What each reading gives on its own, before fiction and overrides (for the evaluation's
    /// per-layer figures): the signal phrases' category and the findings rule's id.
    func layers(_ message: String) -> (signals: String?, rule: String?) {
        let tokens = normalizer.tokens(message)
        let (context, found, read) = reading(tokens)
        let hit = findings.evaluate(read, isCurrent: { context.isCurrent($0, allowJest: true, resolvedCounts: $1, history: $2) })
        return (assessSignals(tokens: tokens, found: found, context: context)?.category, hit?.rule.id)
    }

    /// The names of the findings read in a message, for debugging the vocabulary.
    func findingNames(_ message: String) -> [String] {
        let tokens = normalizer.tokens(message)
        let context = Context(tokens: tokens, cues: cues.matches(in: tokens), people: people)
        return findings.findings(in: tokens, clauses: context.clauses).map { findings.name($0.id) + "[\($0.first)-\($0.last)]" }
    }

    /// One reading of a message, shared by ``assess(_:)``, ``features(of:)`` and `layers`: its
    /// context cues (with the lasting states that date what follows them), the signal phrases, and
    /// the clinical findings outside idioms.
    private func reading(_ tokens: [Token]) -> (context: Context, found: [PhraseMatcher.Match], read: [ClinicalFindings.Finding]) {
        var context = Context(tokens: tokens, cues: cues.matches(in: tokens), people: people)
        let found = signals.matches(in: tokens)
        let read = withoutIdioms(findings.findings(in: tokens, clauses: context.clauses), found: found)
        context.timeAnchors = findings.datedStateEnds(read)
        return (context, found, read)
    }

    /// Whether the findings frame the message as fiction (``ClinicalFindings/isFiction(_:isNegated:sentenceOf:)``).
    private func isFiction(_ read: [ClinicalFindings.Finding], _ context: Context) -> Bool {
        findings.isFiction(read, isNegated: context.isNegated, sentenceOf: { context.clauses.sentence[$0] })
    }

    /// Findings that sit inside an idiom ("this exam is killing me", "dying of laughter") are dropped.
    private func withoutIdioms(_ read: [ClinicalFindings.Finding], found: [PhraseMatcher.Match]) -> [ClinicalFindings.Finding] {
        let signalCount = data.signals.count
        let idioms = found.filter { $0.payload >= signalCount }
        guard !idioms.isEmpty else { return read }
        return read.filter { f in !idioms.contains { $0.first <= f.last && f.first <= $0.last } }
    }

    /// The red-flag rules over the message's findings.
    private func assessFindings(_ read: [ClinicalFindings.Finding], context: Context) -> (assessment: EmergencyAssessment, overrides: [String])? {
        guard let hit = findings.evaluate(read, isCurrent: { context.isCurrent($0, allowJest: true, resolvedCounts: $1, history: $2) }),
              !context.happensToAnimal(hit.latest.match, animals: animalWords),
              hit.rule.category == "suicide" || !(context.alreadyAssessed(hit.anchor.match) || context.settledEarlier(hit.latest.match)),
              let a = assessment(category: hit.rule.category, bystander: context.experiencer(of: hit.anchor.match) ?? (hit.aboutChild ? .neutral : nil), severity: hit.rule.severity)
        else { return nil }
        return (a, hit.overrides)
    }

    /// The signal phrases.
    private func assessSignals(tokens: [Token], found: [PhraseMatcher.Match], context: Context) -> EmergencyAssessment? {
        let signalCount = data.signals.count
        guard found.contains(where: { $0.payload < signalCount }) else { return nil }
        let idioms = found.filter { $0.payload >= signalCount }

        // Signals whose context says "happening now".
        var current: [(signal: Int, match: PhraseMatcher.Match)] = []
        for m in found where m.payload < signalCount {
            let signal = data.signals[m.payload]
            if idioms.contains(where: { $0.first <= m.last && m.first <= $0.last }) { continue }
            if let minimum = signal.minNumber,
               !tokens[m.first...m.last].contains(where: { ($0.value ?? 0) >= minimum }) { continue }
            let isSuicide = signal.category == "suicide"
            if context.isCurrent(m, allowJest: !isSuicide) && !context.happensToAnimal(m, animals: animalWords)
                && (isSuicide || !(context.alreadyAssessed(m) || context.settledEarlier(m))) {
                current.append((m.payload, m))
            }
        }
        guard !current.isEmpty else { return nil }

        struct Hit { var category: String; var severity: String; var match: PhraseMatcher.Match; var variant: String?; var signal: Int? }
        var hits: [Hit] = []
        for (s, m) in current {
            let signal = data.signals[s]
            guard let c = signal.category, let ci = categoryIndex[c] else { continue }
            hits.append(Hit(category: c, severity: signal.severity ?? data.categories[ci].severity, match: m, variant: signal.variant, signal: s))
        }
        let present = Set(current.map(\.signal))
        var absorbed: Set<Int> = []
        for combo in data.combinations {
            let ids = combo.all.compactMap { signalIndex[$0] }
            guard ids.allSatisfy(present.contains) else { continue }
            let first = current.filter { ids.contains($0.signal) }.map(\.match).min { $0.first < $1.first }!
            hits.append(Hit(category: combo.category, severity: combo.severity, match: first, variant: nil, signal: nil))
            for id in combo.absorbs ?? [] { if let i = signalIndex[id] { absorbed.insert(i) } }
        }
        guard !hits.isEmpty else { return nil }

        // An absorbed signal still lists its category, but after every other one. (The sort's
        // closure captures the table, not the whole detector, which it would copy.)
        let priority = self.priority
        func rank(_ h: Hit) -> (Int, Int, Int, Int) {
            let isAbsorbed = h.signal.map(absorbed.contains) ?? false
            return (isAbsorbed ? 1 : 0, h.severity == "emergency" ? 0 : 1, priority[h.category] ?? Int.max, h.match.first)
        }
        let sorted = hits.sorted { rank($0) < rank($1) }
        let main = sorted[0]
        let category = data.categories[categoryIndex[main.category]!]
        var categories: [String] = []
        for h in sorted where !categories.contains(h.category) { categories.append(h.category) }
        let severity = sorted.contains { $0.severity == "emergency" } ? "emergency" : "urgent"

        let person = context.experiencer(of: main.match)
        let guidance: String
        var texts = EmergencyData.Guidance(selfText: category.selfText, bystander: category.bystander)
        if let v = main.variant, let alt = category.variants?[v] { texts = alt }
        if let gender = person {
            guidance = Self.fill(texts.bystander, gender)
        } else {
            guidance = texts.selfText
        }
        var actions = category.actions
        for h in sorted where h.severity == "emergency" {
            for a in data.categories[categoryIndex[h.category]!].actions where !actions.contains(a) { actions.append(a) }
        }
        let note = Self.modelNote(category: category, severity: severity, bystander: person != nil, guidance: guidance, actions: actions)
        return EmergencyAssessment(
            category: main.category, categories: categories, severity: severity, guidance: guidance,
            actions: actions, isBystander: person != nil, gender: person ?? .neutral, modelNote: note
        )
    }

    /// The alert the detector shows for `category` (`cardiac`, `sepsis`, …): its guidance worded
    /// for the writer (`bystander` `nil`) or for someone with them, its actions and model note.
    /// `nil` for a category the data does not define. Used by ``ModelTriage`` and the findings
    /// rules, so every alert carries the product's own guidance.
    public func assessment(category id: String, bystander gender: Gender?, severity: String? = nil, also: [String] = []) -> EmergencyAssessment? {
        guard let ci = categoryIndex[id] else { return nil }
        let category = data.categories[ci]
        let severity = severity ?? category.severity
        let guidance = gender.map { Self.fill(category.bystander, $0) } ?? category.selfText
        var actions = category.actions
        for other in also {
            guard let oi = categoryIndex[other] else { continue }
            for a in data.categories[oi].actions where !actions.contains(a) { actions.append(a) }
        }
        let note = Self.modelNote(category: category, severity: severity, bystander: gender != nil, guidance: guidance, actions: actions)
        var categories = [id]
        for c in also where !categories.contains(c) && categoryIndex[c] != nil { categories.append(c) }
        return EmergencyAssessment(
            category: id, categories: categories, severity: severity, guidance: guidance,
            actions: actions, isBystander: gender != nil, gender: gender ?? .neutral, modelNote: note
        )
    }

    /// `template` with its pronoun placeholders (`{them}`, `{their}`, `{themself}`) worded for
    /// `gender`; any other text in braces is kept as it is.
    ///
    /// One pass over the UTF-8 bytes: Foundation's `replacingOccurrences` (three of them, through
    /// `NSString` on Linux) was about 40 µs of an emergency message's assessment, on the path of
    /// the alert to the patient.
    static func fill(_ template: String, _ gender: Gender) -> String {
        let bytes = template.utf8
        guard bytes.contains(UInt8(ascii: "{")) else { return template }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count + 8)
        var i = bytes.startIndex
        while i != bytes.endIndex {
            let byte = bytes[i]
            if byte == UInt8(ascii: "{"), let close = bytes[i...].firstIndex(of: UInt8(ascii: "}")) {
                let name = bytes[bytes.index(after: i)..<close]
                let word: String? = switch String(decoding: name, as: UTF8.self) {
                case "them": gender.object
                case "their": gender.possessive
                case "themself": gender.reflexive
                default: nil
                }
                if let word {
                    out.append(contentsOf: word.utf8)
                    i = bytes.index(after: close)
                    continue
                }
            }
            out.append(byte)
            i = bytes.index(after: i)
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func modelNote(category: EmergencyData.Category, severity: String, bystander: Bool, guidance: String, actions: [EmergencyAction]) -> String {
        let who = bystander ? "to someone the patient is with" : "to the patient"
        let links = actions.map(\.label).joined(separator: ", ")
        return """
            SAFETY ALERT ALREADY SHOWN: the patient's message suggests a possible \(category.name) happening now \(who) \
            (\(severity)). The app has shown this guidance above your reply: "\(guidance)" (buttons: \(links)). \
            Your reply must support that guidance and never contradict or soften it: begin by urging them to follow it now, \
            keep the reply short and calm, and do not diagnose. \(category.note)
            """
    }
}
