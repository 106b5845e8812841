/// Recognises medicines in patient messages and warns about dangerous pairs across a
/// conversation.
///
/// Medicines are found by generic name, common US brand name or class ("NSAIDs", "an SSRI")
/// with one automaton pass; misspellings are corrected against the drug vocabulary only when the
/// correction is unambiguous and the word is not itself a real word or another drug
/// ("Claritin" stays loratadine and never becomes clarithromycin). Each mention is then
/// classified from its clause:
/// - stopped: "I stopped taking warfarin", "I'm off it now", "warfarin was stopped", "I used to
///   take Prozac", "… in 2019"; "I stopped it" applies to the medicines of the previous message;
/// - not taken: "I don't take any blood thinners";
/// - someone else's: "my wife takes Zoloft", "she was prescribed tramadol" (but "my mom gave me
///   some of her Percocet" is the patient's);
/// - otherwise the patient takes it or asks about taking it ("can I take Advil?").
/// A new pair is one medicine from this message with one from earlier in the conversation or
/// from this message, listed in `interactions.json`, and not warned about before.
public struct MedicationChecker: Sendable {
    /// The checker built from the bundled data (see ``EmergencyDetector/shared`` on loading).
    public static let shared: MedicationChecker = {
        do {
            return try MedicationChecker()
        } catch {
            preconditionFailure("MedViewSafety: bundled medication data failed to load: \(error)")
        }
    }()

    /// A name the lexicon recognises: a drug or a class.
    struct Entry: Sendable {
        /// Reported name: generic, or class label.
        var name: String
        /// Interaction keys: the generic name and `class:<id>` for each class it belongs to.
        var keys: Set<String>
    }

    /// Every name's entry (internal for the tests' reference check of ``interaction(_:_:doses:)``).
    let entries: [Entry]
    private let groups: [[Int]]
    /// Products named by a name and a number ("Tylenol #3" is acetaminophen with codeine, plain
    /// "Tylenol" acetaminophen): the group of the plain name → the number → the product's group.
    private let numbered: [Int: [Double: Int]]
    /// Every name the lexicon knows (lowercased) and the medicines (or class) it stands for.
    let nameTable: [String: Set<String>]
    private let entryByName: [String: Int]
    private let names: PhraseMatcher
    /// Reads names spelled by ear before the exact matcher runs ("Plavics", "symbalta").
    private let resolver: DrugNameResolver
    private let cueMatcher: PhraseMatcher
    private let normalizer: TextNormalizer
    private let people: PersonLexicon
    /// Animal words: a medicine given to a pet is not the writer's ("the vet gave our dog tramadol").
    private let animals: Set<String>
    /// The interaction rules, curated first, in the order the data lists them (the first of the
    /// highest severity wins a pair).
    let interactions: [InteractionData.Interaction]
    /// Each rule's two sides as sets, in ``interactions`` order (made once, not for every pair).
    private let ruleSides: [(a: Set<String>, b: Set<String>)]
    /// The rules each interaction key (a generic name or `class:<id>`) is on a side of, ascending.
    private let rulesByKey: [String: [Int]]
    /// Days a medicine keeps interacting after it is stopped (class `washout_<days>`: MAO
    /// inhibitors 14, fluoxetine 35, amiodarone 90), by generic name.
    private let washoutDays: [String: Double]

    /// Loads the bundled lexicon, interaction list and knowledge base.
    public init() throws(SafetyDataError) {
        try self.init(
            lexicon: SafetyData.decode(DrugLexiconData.self, from: "drugs.json"),
            interactions: SafetyData.decode(InteractionData.self, from: "interactions.json"),
            knowledge: SafetyData.decode(DrugKnowledgeData.self, from: "knowledge.json"),
            language: SafetyData.language()
        )
    }

    init(lexicon: DrugLexiconData, interactions: InteractionData, knowledge: DrugKnowledgeData? = nil, language: LanguageData) throws(SafetyDataError) {
        var entries: [Entry] = []
        // Each name stands for one or more entries (a combination product names all its
        // ingredients): `groups[payload]`.
        var groups: [[Int]] = []
        var groupOfName: [String: Int] = [:]
        func add(name raw: String, entry: Int) {
            let n = Self.numbersAsSymbol(Self.literal(raw).lowercased())
            if let g = groupOfName[n] {
                if !groups[g].contains(entry) { groups[g].append(entry) }
            } else {
                groupOfName[n] = groups.count
                groups.append([entry])
            }
        }
        // Merge the knowledge base into the curated lexicon: same generic, union of names and classes.
        var drugs = lexicon.drugs
        var classList = lexicon.classes
        var rules = interactions.interactions
        if let knowledge {
            var byGeneric: [String: Int] = [:]
            for (i, d) in drugs.enumerated() { byGeneric[d.generic] = i }
            for d in knowledge.drugs {
                if let i = byGeneric[d.generic] {
                    for n in d.names where !drugs[i].names.contains(n) { drugs[i].names.append(n) }
                    for c in d.classes where !drugs[i].classes.contains(c) { drugs[i].classes.append(c) }
                } else {
                    byGeneric[d.generic] = drugs.count
                    drugs.append(d)
                }
            }
            let known = Set(classList.map(\.id))
            for c in knowledge.classes where !known.contains(c.id) { classList.append(c) }
            rules += knowledge.interactions
        }
        let classIds = Set(classList.map(\.id))
        var generics: Set<String> = []
        for drug in drugs {
            for c in drug.classes where !classIds.contains(c) { throw .unknownReference("drugs.json", "class \(c)") }
            generics.insert(drug.generic)
            let id = entries.count
            entries.append(Entry(name: drug.generic, keys: Set([drug.generic] + drug.classes.map { "class:" + $0 })))
            for n in [drug.generic] + drug.names { add(name: n, entry: id) }
        }
        for c in classList {
            let id = entries.count
            entries.append(Entry(name: c.label, keys: ["class:" + c.id]))
            for n in c.names { add(name: n, entry: id) }
        }
        let patterns = groupOfName.map { ($0.key, $0.value) }.sorted { $0.1 < $1.1 }
        var numbered: [Int: [Double: Int]] = [:]
        for (name, g) in patterns {
            guard let (plain, number) = Self.numberedName(name), let base = groupOfName[plain] else { continue }
            numbered[base, default: [:]][number] = g
        }
        self.numbered = numbered
        for i in rules {
            if let d = i.dose, !generics.contains(d.drug) { throw .unknownReference("interactions", "dose drug \(d.drug)") }
            for k in i.a + i.b {
                if k.hasPrefix("class:") {
                    guard classIds.contains(String(k.dropFirst(6))) else { throw .unknownReference("interactions.json", k) }
                } else if !generics.contains(k) {
                    throw .unknownReference("interactions.json", "drug \(k)")
                }
            }
        }
        var cuePatterns: [(String, Int)] = []
        for (i, kind) in MedicationCue.allCases.enumerated() {
            for p in lexicon.cues[kind.rawValue] ?? [] { cuePatterns.append((p, i)) }
        }
        // The medication list's own real words (found by `medview safety vocab-audit`) are
        // protected from the name matcher's misspelling index too.
        var language = language
        language.protectedWords += lexicon.realWords ?? []
        let compiler = PhraseCompiler(language: language)
        self.names = try compiler.matcher(patterns, skipFillers: false, fuzzy: true, soundKeys: true)
        self.cueMatcher = try compiler.matcher(cuePatterns, skipFillers: false, fuzzy: false)
        var resolverNames: [DrugNameResolver.Name] = []
        for (name, g) in patterns where !name.contains(PhraseMatcher.numberSymbol) {
            let medicines = Set(groups[g].map { entries[$0].name })
            for words in try compiler.phrases(name) { resolverNames.append(.init(words: words, medicines: medicines)) }
        }
        self.resolver = DrugNameResolver(
            names: resolverNames, vocabulary: names.vocabulary,
            protected: Set(language.protectedWords).union(lexicon.realWords ?? []),
            common: cueMatcher.vocabulary.union(language.fillers).union(language.people.male + language.people.female + language.people.neutral + language.people.firstPerson + language.people.generic)
        )
        self.normalizer = TextNormalizer(language: language, knownWords: names.vocabulary.union(cueMatcher.vocabulary).union(language.protectedWords))
        self.people = PersonLexicon(language.people)
        self.animals = Set(language.animals ?? [])
        self.entries = entries
        self.groups = groups
        self.nameTable = groupOfName.mapValues { Set(groups[$0].map { entries[$0].name }) }
        var byName: [String: Int] = [:]
        for (i, e) in entries.enumerated() where byName[e.name] == nil { byName[e.name] = i }
        self.entryByName = byName
        self.interactions = rules
        self.ruleSides = rules.map { (Set($0.a), Set($0.b)) }
        var rulesByKey: [String: [Int]] = [:]
        for (r, rule) in rules.enumerated() {
            for k in Set(rule.a + rule.b) { rulesByKey[k, default: []].append(r) }
        }
        self.rulesByKey = rulesByKey
        var washout: [String: Double] = [:]
        for e in entries {
            for k in e.keys where k.hasPrefix("class:washout_") {
                if let d = Double(k.dropFirst("class:washout_".count)) { washout[e.name] = max(washout[e.name] ?? 0, d) }
            }
        }
        self.washoutDays = washout
    }

    /// A number joined to a name by a hyphen ("theo-24") matches as any number: the matcher
    /// reads numbers as one symbol. Other numbers stay as written ("tylenol #3" must not make
    /// "tylenol 500" codeine).
    private static func numbersAsSymbol(_ name: String) -> String {
        guard let r = name.range(of: #"-[0-9]+$"#, options: .regularExpression) else { return name }
        return name[..<r.lowerBound] + " " + PhraseMatcher.numberSymbol
    }

    /// A name that ends in a product number ("tylenol #3", "tylenol no 3", "tylenol 4"): the
    /// plain name and the number; `nil` for any other name.
    static func numberedName(_ name: String) -> (String, Double)? {
        var words = name.split(separator: " ").map(String.init)
        guard words.count >= 2, let last = words.last else { return nil }
        let digits = last.hasPrefix("#") ? String(last.dropFirst()) : last
        guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }), let value = Double(digits) else { return nil }
        words.removeLast()
        while let w = words.last, Self.productNumberWords.contains(w) { words.removeLast() }
        return words.isEmpty ? nil : (words.joined(separator: " "), value)
    }

    /// Words between a past time and a medicine that make its use go on to now.
    static let ongoingWords: Set<String> = ["been", "now", "currently", "still"]

    /// Words between a product's name and its number ("Tylenol No. 3", "Tylenol number 3").
    static let productNumberWords: Set<String> = ["no", "no.", "number", "num", "#"]

    /// Drug names are literal text: parentheses and `$` in them are not pattern syntax.
    private static func literal(_ name: String) -> String {
        name.filter { !"()|$".contains($0) }
    }

    /// The words of the drug names, for the vocabulary audit.
    var nameVocabulary: Set<String> { names.vocabulary }

    /// New interaction warnings for this message; updates `context` with the medicines the
    /// message says the patient takes or stopped.
    public func check(_ message: String, context: inout MedicationContext) -> [InteractionWarning] {
        let scan = mentions(in: message, lastMentioned: context.lastMentioned, lastPerson: context.lastPerson)
        var found = scan.mentions
        // "her new sleeping pill is zolpidem", "my blood thinner (Eliquis)": a class named beside
        // one of its own medicines for the same person is that medicine, not a second one.
        found = found.filter { m in
            guard let i = entryByName[m.name], entries[i].keys.allSatisfy({ $0.hasPrefix("class:") }) else { return true }
            return !found.contains { o in
                o.name != m.name && o.person == m.person && o.status == m.status
                    && entryByName[o.name].map { entries[$0].keys.isSuperset(of: entries[i].keys) } == true
            }
        }
        // "doc wanted clarithromycin" then "… so she gave me azithromycin instead": the proposal
        // of the previous message was replaced, not taken.
        if scan.instead { for name in context.lastProposed { context.remove(name) } }
        context.setLastProposed(scan.proposed)
        if let person = scan.lastPerson { context.setLastPerson(person) }
        if let person = scan.caredFor { context.addCaredFor(person) }
        var warnings: [InteractionWarning] = []
        // Another person's medicines pair only with that person's, never with the patient's:
        // when both medicines of a pair are one person's ("my mom takes sertraline and has been
        // adding St John's wort"), the writer is in practice that person's caregiver and is
        // warned for them. Medicines that person stopped (beyond their washout) or does not take
        // leave their list, as the patient's own do.
        // Only people whose medicines changed in this message can have a new pair.
        var touched: [String] = []
        for m in found where m.status == .someoneElse {
            guard let person = m.person else { continue }
            if m.theirStatus == .taking || m.theirStatus == .stopped && (m.stoppedDaysAgo ?? 0) < (washoutDays[m.name] ?? -1) {
                context.add(m.name, for: person)
                if !touched.contains(person) { touched.append(person) }
            } else {
                context.remove(m.name, for: person)
            }
        }
        for person in touched {
            let theirs = context.others[person] ?? []
            for (i, a) in theirs.enumerated() {
                for b in theirs[..<i] {
                    if let warning = newWarning(a, b, person: person, context: &context) { warnings.append(warning) }
                }
            }
        }
        guard !found.isEmpty else { return warnings }
        // A medicine with a long washout still interacts for a while after it is stopped ("quit
        // Nardil 4 days ago", "stopped amiodarone 3 weeks ago"): it stays in the context, as
        // taken, until its washout has passed by what the message says (no time said: recently).
        found = found.map { m -> MedicationMention in
            guard m.status == .stopped, let days = washoutDays[m.name], (m.stoppedDaysAgo ?? 0) < days else { return m }
            var still = m
            still.status = .taking
            return still
        }
        for m in found where m.status == .stopped { context.remove(m.name) }
        for m in found where m.status == .taking { if let d = m.doseMg { context.setDose(d, for: m.name) } }
        var current: [String] = []
        for m in found where m.status == .taking && !current.contains(m.name) { current.append(m.name) }
        let earlier = context.medicines
        for (i, name) in current.enumerated() {
            let partners = earlier.filter { !current.contains($0) } + current[..<i]
            for other in partners where other != name {
                if let warning = newWarning(name, other, person: nil, context: &context) { warnings.append(warning) }
            }
        }
        for name in current { context.add(name) }
        let named = found.filter { $0.status == .taking || $0.status == .stopped }.map(\.name)
        if !named.isEmpty { context.setLastMentioned(named) }
        return warnings
    }

    /// A warning for `a` with `b` if they interact and the pair (for `person`, or the patient) was
    /// not warned about before in this conversation; records it as warned.
    private func newWarning(_ a: String, _ b: String, person: String?, context: inout MedicationContext) -> InteractionWarning? {
        guard let interaction = interaction(a, b, doses: person == nil ? context.doses : [:]), context.markWarned(a, b, person: person) else { return nil }
        return InteractionWarning(
            drugs: [a, b], severity: interaction.severity, advice: interaction.advice,
            source: interaction.source, interactionId: interaction.id
        )
    }

    /// The most severe listed interaction between two named medicines, if any: the same
    /// medicine never pairs with itself, a rule's exceptions are skipped, and a dose-limited rule
    /// applies only when the stated daily dose (`doses`, mg by generic) is above its limit or
    /// was not stated.
    func interaction(_ a: String, _ b: String, doses: [String: Double] = [:]) -> InteractionData.Interaction? {
        guard a != b, let ia = entryByName[a], let ib = entryByName[b] else { return nil }
        let ka = entries[ia].keys
        let kb = entries[ib].keys
        // Only a rule with one of `a`'s keys on a side can match, so only those are looked at,
        // in the rules' own order (the choice of the best depends on it).
        var candidates: [Int] = []
        for k in ka { if let rules = rulesByKey[k] { candidates += rules } }
        candidates.sort()
        var best: InteractionData.Interaction?
        var previous = -1
        for r in candidates where r != previous {
            previous = r
            let i = interactions[r]
            if let ex = i.exceptions, ex.contains(a) || ex.contains(b) { continue }
            if let limit = i.dose, limit.drug == a || limit.drug == b, let stated = doses[limit.drug], stated <= limit.maxMg { continue }
            let (sa, sb) = ruleSides[r]
            let hit = (!sa.isDisjoint(with: ka) && !sb.isDisjoint(with: kb)) || (!sa.isDisjoint(with: kb) && !sb.isDisjoint(with: ka))
            guard hit else { continue }
            if best == nil || (best!.severity != "high" && i.severity == "high") { best = i }
        }
        return best
    }

    /// The medicines a message names and what it says about each, in order.
    public func mentions(in message: String) -> [MedicationMention] {
        mentions(in: message, lastMentioned: [], lastPerson: nil).mentions
    }

    /// Words for the same person, so "my mother" and "mom" are one ("mother" → "mom").
    static let samePerson: [String: String] = [
        "mother": "mom", "mum": "mom", "mommy": "mom", "mama": "mom", "momma": "mom", "father": "dad", "daddy": "dad",
        "papa": "grandpa", "grandfather": "grandpa", "granddad": "grandpa", "grandmother": "grandma", "granny": "grandma",
        "nana": "grandma", "stepmother": "stepmom", "stepfather": "stepdad", "kid": "child", "toddler": "child",
    ]

    /// The person a pronoun refers to when no person word came before it.
    static let unnamedPerson = "someone"

    /// Pronouns that refer back to a person named before.
    private static let pronouns: Set<String> = [
        "he", "him", "his", "himself", "hes", "she", "her", "hers", "herself", "shes",
        "they", "them", "their", "themselves", "themself", "theyre",
    ]

    /// The medicines of a message, the last other person it names (for pronouns in later
    /// messages) and the person the patient is caring for in it, if it says so.
    private func mentions(in message: String, lastMentioned: [String], lastPerson: String?) -> (mentions: [MedicationMention], lastPerson: String?, caredFor: String?, proposed: [String], instead: Bool) {
        let tokens = resolver.resolving(normalizer.tokens(message))
        // Who a person word at `i` is: a noun as itself ("dads" → "dad"), a pronoun as the
        // nearest noun before it, in this message or the conversation.
        func noun(_ word: String) -> String? {
            guard case .other? = people.reference(word), !Self.pronouns.contains(word) else { return nil }
            if word.hasSuffix("s"), case .other? = people.reference(String(word.dropLast())) {
                let base = String(word.dropLast())
                return Self.samePerson[base] ?? base
            }
            return Self.samePerson[word] ?? word
        }
        func gender(_ word: String) -> Gender? {
            if case .other(let g)? = people.reference(word) { return g }
            return nil
        }
        func person(at i: Int) -> String? {
            if let n = noun(tokens[i].text) { return n }
            if Self.isAgeNoun(at: i, tokens: tokens) { return "child" }
            // A gendered pronoun refers to the nearest person word of its gender ("my dad takes
            // warfarin and my mom wants to give him aspirin": him is dad).
            let wanted = gender(tokens[i].text).flatMap { $0 == .neutral ? nil : $0 }
            var j = i - 1
            while j >= 0 {
                if let n = noun(tokens[j].text) {
                    let g = gender(tokens[j].text)
                    if wanted == nil || g == wanted || g == .neutral { return n }
                } else if Self.isAgeNoun(at: j, tokens: tokens) {
                    return "child"
                }
                j -= 1
            }
            // "My 6 year old takes…, can I give him…": a pronoun with no noun before it is one
            // unnamed other person, not nobody.
            return lastPerson ?? Self.unnamedPerson
        }
        let messagePerson = tokens.indices.reversed().lazy.compactMap { noun(tokens[$0].text) ?? (Self.isAgeNoun(at: $0, tokens: tokens) ? "child" : nil) }.first
        // Leftmost-longest, non-overlapping name matches.
        let raw = names.matches(in: tokens).sorted { ($0.first, -$0.last) < ($1.first, -$1.last) }
        var picked: [PhraseMatcher.Match] = []
        for m in raw {
            if let last = picked.last, m.first <= last.last { continue }
            picked.append(m)
        }
        // "Tylenol #3": a name followed by its product number is that product.
        for (i, m) in picked.enumerated() {
            guard let products = numbered[m.payload] else { continue }
            var j = m.last + 1
            // Skips "no", "number", "#" and the full stop of "No. 3".
            while j < tokens.count,
                  tokens[j].kind == .word && Self.productNumberWords.contains(tokens[j].text)
                    || tokens[j].kind == .boundary && j > m.last + 1 && tokens[j - 1].text == "no" { j += 1 }
            guard j < tokens.count, tokens[j].kind == .number, let v = tokens[j].value, let g = products[v],
                  i + 1 == picked.count || picked[i + 1].first > j else { continue }
            picked[i] = PhraseMatcher.Match(payload: g, first: m.first, last: j)
        }
        let cueMatches = cueMatcher.matches(in: tokens)
        var byKind = Array(repeating: [PhraseMatcher.Match](), count: MedicationCue.allCases.count)
        for c in cueMatches { byKind[c.payload].append(c) }
        func cues(_ kind: MedicationCue) -> [PhraseMatcher.Match] { byKind[MedicationCue.allCases.firstIndex(of: kind)!] }
        let clauses = ClauseMap(tokens: tokens, breaks: cues(.clauseBreak), people: people)
        let nameSpans = picked

        var out: [MedicationMention] = []
        var outEnds: [Int] = []
        var outStarts: [Int] = []
        for m in picked {
            let (status, owner, theirs) = status(of: m, tokens: tokens, clauses: clauses, cues: cues, names: picked)
            let dose = Self.dose(near: m, in: tokens)
            let daysAgo = status == .stopped || theirs == .stopped ? Self.daysAgo(inClauseOf: m, tokens: tokens, clauses: clauses) : nil
            for e in groups[m.payload] {
                var mention = MedicationMention(name: entries[e].name, status: status, person: owner.flatMap(person(at:)), doseMg: dose, stoppedDaysAgo: daysAgo)
                mention.theirStatus = theirs
                out.append(mention)
                outEnds.append(m.last)
                outStarts.append(m.first)
            }
        }
        // "… flagged Bactrim, so the doctor changed it to nitrofurantoin": the medicine named last
        // before "changed it to" was replaced, not taken.
        for r in cues(.replaced) {
            // Not one named after "with" ("flagged Bactrim with my lisinopril, so they changed it").
            func afterWith(_ k: Int) -> Bool {
                let first = outStarts[k]
                return (1...2).contains { first - $0 >= 0 && tokens[first - $0].text == "with" }
            }
            guard let k = outEnds.indices.last(where: { outEnds[$0] < r.first && !afterWith($0) }) else { continue }
            if out[k].status == .taking { out[k].status = .notTaking }
            if out[k].status == .someoneElse { out[k].theirStatus = .notTaking }
        }
        // "I stopped it": a stop cue followed by a pronoun in a clause that names no medicine.
        for stop in cues(.stop) {
            let clause = clauses.clause[stop.first]
            guard !nameSpans.contains(where: { clauses.clause[$0.first] == clause }) else { continue }
            let pronoun = cues(.pronounAfterStop).contains { $0.first > stop.last && $0.first - stop.last <= 2 }
            guard pronoun else { continue }
            let earlierHere = out.filter { $0.status == .taking }.map(\.name)
            let targets = earlierHere.isEmpty ? lastMentioned : [earlierHere.last!]
            for t in targets {
                out.removeAll { $0.name == t && $0.status == .taking }
                out.append(MedicationMention(name: t, status: .stopped))
            }
        }
        // "i don't take either", "I'm not on any of them": a negation whose object is a pronoun
        // for the medicines, in a clause that names none, means none of this message's is taken.
        for n in cues(.negation) where !cues(.pseudoNegation).contains(where: { $0.first <= n.last && n.first <= $0.last }) {
            let clause = clauses.clause[n.first]
            guard !nameSpans.contains(where: { clauses.clause[$0.first] == clause }) else { continue }
            let end = min(tokens.count, n.last + 4)
            guard ((n.last + 1)..<end).contains(where: { Self.allOfThem.contains(tokens[$0].text) && clauses.clause[$0] == clause }) else { continue }
            for k in out.indices where outEnds[k] < n.first && out[k].status == .taking { out[k].status = .notTaking }
        }
        // A proposal replaced "instead" ("doc wanted to give me tramadol … so she gave me a
        // lidocaine patch instead"): the proposed medicine was not taken.
        // Proposed here and not replaced here: a later message's "instead" may replace it.
        var proposed: [String] = []
        // ("instead of X" names the replaced one itself: a negation cue.)
        let instead = tokens.indices.last { tokens[$0].text == "instead" && ($0 + 1 == tokens.count || tokens[$0 + 1].text != "of") }
        for p in cues(.proposal) {
            guard let k = outStarts.indices.first(where: { outStarts[$0] > p.last && outStarts[$0] - p.last <= 4 }) else { continue }
            // "…wanted to give me cipro but I'm allergic so I got nitrofurantoin": another
            // medicine given in the same sentence after a cue that the proposal gave way.
            let sentence = clauses.sentence[outStarts[k]]
            let overtaken = cues(.overtaken).contains { o in
                o.first > outEnds[k] && clauses.sentence[o.first] == sentence
                    && outStarts.indices.contains { outStarts[$0] > o.last && clauses.sentence[outStarts[$0]] == sentence && out[$0].name != out[k].name }
            }
            if overtaken || instead.map({ outEnds[k] < $0 }) == true {
                if out[k].status == .taking { out[k].status = .notTaking }
                if out[k].status == .someoneElse { out[k].theirStatus = .notTaking }
            } else if out[k].status == .taking {
                proposed.append(out[k].name)
            }
        }
        // "I read that simvastatin interacts with grapefruit and clarithromycin, I'm only on
        // simvastatin": the writer's medicines named before an "only" that does not name them.
        for e in cues(.exclusive) {
            let kept = Set(out.indices.filter { outStarts[$0] > e.last && clauses.sentence[outStarts[$0]] == clauses.sentence[e.last] }.map { out[$0].name })
            guard !kept.isEmpty else { continue }
            for k in out.indices where outEnds[k] < e.first && out[k].status == .taking && !kept.contains(out[k].name) {
                out[k].status = .notTaking
            }
        }
        // "Can I give him…", "is that ok for her?": the person in the cue, else the message's.
        // Without a person in the cue ("is that safe?"), the person whose medicines the message names.
        let medicinesPerson = out.last { $0.status == .someoneElse && $0.person != nil }?.person
        // Or a caring verb and a word for someone's medicines in one clause ("I handle all of my
        // mom's medications", "I fill her pill organizer every Sunday").
        // A cue that names the person ("give him") first; else any.
        let careCues = cues(.caregiver)
        var careCue = careCues.first { c in (c.first...c.last).contains { if case .other? = people.reference(tokens[$0].text) { return true }; return false } } ?? careCues.first
        if careCue == nil {
            for v in cues(.careVerb) {
                if let n = cues(.medicinesNoun).first(where: { clauses.clause[$0.first] == clauses.clause[v.first] && $0.first > v.last }) {
                    careCue = PhraseMatcher.Match(payload: v.payload, first: v.first, last: n.last)
                    break
                }
            }
        }
        let caredFor = careCue.flatMap { cue in
            (cue.first...cue.last).lazy.compactMap { i -> String? in
                guard case .other? = people.reference(tokens[i].text) else { return nil }
                return person(at: i)
            }.first ?? medicinesPerson ?? messagePerson ?? lastPerson
        }
        return (out, messagePerson ?? lastPerson, caredFor, proposed, instead != nil && cues(.proposal).isEmpty)
    }

    /// How long ago the clause of `m` says something happened: "4 days ago", "3 weeks ago", "a
    /// month ago", "last week", "last Tuesday", "yesterday", "years ago", "in 2019"; `nil` when
    /// it says no time.
    static func daysAgo(inClauseOf m: PhraseMatcher.Match, tokens: [Token], clauses: ClauseMap) -> Double? {
        let clause = clauses.clause[m.first]
        let idx = tokens.indices.filter { clauses.clause[$0] == clause }
        let words = idx.map { tokens[$0] }
        let units: [String: Double] = [
            "day": 1, "days": 1, "week": 7, "weeks": 7, "wk": 7, "wks": 7, "month": 30, "months": 30, "mo": 30, "mos": 30,
            "year": 365, "years": 365, "yr": 365, "yrs": 365,
        ]
        let weekdays: Set<String> = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday", "weekend", "night"]
        // A named month or season as the time it happened ("back in March", "until January", "in
        // the winter") is months ago: no message says which month it is now, so a named month is
        // read as two months, a season as three.
        let seasons: Set<String> = ["winter", "summer", "spring", "fall", "autumn"]
        let monthWords: Set<String> = ["in", "until", "till", "til", "through", "thru", "last", "during", "around"]
        for (k, t) in words.enumerated() {
            // "the 80s" arrives as the number 80 and the word "s".
            if t.kind == .number, let v = t.value, [60, 70, 80, 90, 2000].contains(v), k >= 1, words[k - 1].text == "the",
               k + 1 < words.count, words[k + 1].text == "s" {
                return 3650
            }
            if Self.months.contains(t.text), k >= 1, monthWords.contains(words[k - 1].text) { return 60 }
            if seasons.contains(t.text), k >= 1, ["the", "last", "this"].contains(words[k - 1].text) { return words[k - 1].text == "this" ? 30 : 90 }
            switch t.text {
            // A decade ("in the nineties"; "the 80s" above) is years ago; "in my seventies" is an age.
            case "sixties", "seventies", "eighties", "nineties":
                if k >= 1, words[k - 1].text == "the" { return 3650 }
            case "yesterday": return 1
            case "today", "tonight": return 0
            case "this" where k + 1 < words.count && ["morning", "afternoon", "evening"].contains(words[k + 1].text): return 0
            case "last", "past":
                if k + 1 < words.count {
                    let n = words[k + 1].text
                    if let u = units[n] { return u }
                    if weekdays.contains(n) { return 7 }
                }
            case "ago":
                guard k >= 1 else { continue }
                let unit = words[k - 1].text
                guard let u = units[unit] else {
                    if ["while", "time"].contains(unit) { return 365 }
                    continue
                }
                if k >= 2, let v = words[k - 2].value { return v * u }
                if k >= 2, ["a", "an", "one"].contains(words[k - 2].text) { return u }
                if k >= 2, ["few", "couple"].contains(words[k - 2].text) { return 3 * u }
                return 2 * u  // "weeks ago", "months ago", "years ago"
            default:
                if t.kind == .number, let v = t.value, v >= 1950, v <= 2100, k >= 1, ["in", "since"].contains(words[k - 1].text) { return 365 }
            }
        }
        // "I used to take Prozac": a habit of the past, not a recent stop.
        if zip(words, words.dropFirst()).contains(where: { $0.text == "used" && $1.text == "to" }) { return 365 }
        return nil
    }

    /// Pronouns for all the medicines named ("i don't take either").
    static let allOfThem: Set<String> = ["either", "them", "any", "those", "neither"]

    /// Month names ("may" only after "in", "until" and the like, where it is a month).
    static let months: Set<String> = [
        "january", "february", "march", "april", "may", "june", "july", "august", "september", "october", "november", "december",
        "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
    ]

    /// Words that end a negation's reach before the medicine ("not … with my warfarin").
    static let negationScopeEnds: Set<String> = ["while", "because", "since", "but"]

    /// Pronouns that can stand for the care team ("they added verapamil").
    static let careTeamPronouns: Set<String> = ["they", "theyre", "them"]
    /// Verbs of prescribing, and words that may come between the pronoun and the verb.
    static let prescribingVerbs: Set<String> = [
        "started", "start", "starting", "starts", "added", "add", "adding", "put", "putting", "gave", "give", "giving", "given",
        "prescribed", "prescribe", "prescribing", "switched", "switch", "switching", "changed", "upped", "increased", "raised",
        "want", "wanted", "wants", "want to", "recommended", "suggested", "ordered", "sent", "send", "called", "wrote", "written",
    ]
    static func isPrescribing(after i: Int, tokens: [Token]) -> Bool {
        var j = i + 1
        var skipped = 0
        while j < tokens.count, skipped <= 2 {
            let t = tokens[j].text
            if prescribingVerbs.contains(t) { return true }
            guard ["just", "also", "now", "have", "had", "are", "re", "were", "recently", "then", "finally", "both"].contains(t) else { return false }
            j += 1
            skipped += 1
        }
        return false
    }

    /// "my neighbor said to take a baby aspirin daily so I started": the writer says, after the
    /// name and in the same sentence, that they take or started it.
    static func writerTakesItAfter(_ m: PhraseMatcher.Match, tokens: [Token]) -> Bool {
        let verbs: Set<String> = ["started", "start", "take", "took", "taking", "tried", "began", "use", "used", "using"]
        var j = m.last + 1
        while j + 1 < tokens.count, j <= m.last + 10, tokens[j].kind != .boundary {
            // The verb must refer back to it: end of sentence or "it", not another name ("and I take tramadol").
            // "I've been taking it": the auxiliary is skipped.
            let v = j + 2 < tokens.count && ["been", "have", "also", "just", "already"].contains(tokens[j + 1].text) ? j + 2 : j + 1
            if ["i", "ive"].contains(tokens[j].text), verbs.contains(tokens[v].text) {
                let next = v + 1 < tokens.count ? tokens[v + 1] : nil
                if next == nil || !next!.isWordLike || ["it", "them", "too", "taking", "daily", "every", "that", "this", "one", "some", "doing"].contains(next!.text) { return true }
            }
            j += 1
        }
        return false
    }

    /// Words after a bare number that make it something other than a dose in mg.
    private static let bareNumberBlockers: Set<String> = [
        "year", "years", "yr", "yrs", "month", "months", "week", "weeks", "day", "days", "hour", "hours", "hr", "hrs",
        "minute", "minutes", "min", "mins", "times", "time", "x", "tablet", "tablets", "tab", "tabs", "pill", "pills",
        "capsule", "capsules", "puff", "puffs", "unit", "units", "ml", "mcg", "percent", "drops", "drop", "iu",
    ]

    /// Units read as milligrams.
    private static let milligrams: Set<String> = ["mg", "mgs", "milligram", "milligrams", "mgm"]

    /// The dose in mg written right after the name ("simvastatin 40 mg", "zocor 40mg daily") or
    /// right before it ("40 mg of simvastatin"); grams are converted.
    static func dose(near m: PhraseMatcher.Match, in tokens: [Token]) -> Double? {
        func read(_ i: Int) -> Double? {
            guard i >= 0, i + 1 < tokens.count, tokens[i].kind == .number, let v = tokens[i].value else { return nil }
            let unit = tokens[i + 1].text
            if milligrams.contains(unit) { return v }
            if unit == "g" || unit == "gram" || unit == "grams" { return v * 1000 }
            return nil
        }
        var i = m.last + 1
        while i < tokens.count && i <= m.last + 3 && tokens[i].isWordLike {
            if let v = read(i) { return v }
            i += 1
        }
        // "zocor 20", "simvastatin 40 at night": a bare number right after the name, unless a
        // unit of time or count follows it ("for 20 years", "2 tablets").
        let j = m.last + 1
        if j < tokens.count, tokens[j].kind == .number, let v = tokens[j].value, v >= 0.5, v <= 2000 {
            let next = j + 1 < tokens.count ? tokens[j + 1].text : ""
            if !bareNumberBlockers.contains(next) { return v }
        }
        for j in [m.first - 2, m.first - 3] where j >= 0 {
            if let v = read(j), tokens[(j + 2)..<m.first].allSatisfy({ $0.text == "of" || $0.kind == .word && milligrams.contains($0.text) }) { return v }
        }
        // "baby aspirin", "low dose aspirin": the 81 mg tablet.
        let words = tokens[max(0, m.first - 2)...m.last].map(\.text)
        if words.contains("baby") || zip(words, words.dropFirst()).contains(where: { $0 == "low" && $1 == "dose" }) {
            return 81
        }
        return nil
    }

    /// What the message says about the medicine at `m`, and for someone else's, the index of
    /// the person word that made it theirs.
    private func status(
        of m: PhraseMatcher.Match, tokens: [Token], clauses: ClauseMap,
        cues: (MedicationCue) -> [PhraseMatcher.Match], names: [PhraseMatcher.Match]
    ) -> (MedicationMention.Status, Int?, MedicationMention.Status) {
        let (own, owner) = ownStatus(of: m, tokens: tokens, clauses: clauses, cues: cues, names: names)
        guard own == .someoneElse else { return (own, nil, .taking) }
        // Someone else's: what the message says about them and it, from the same cues.
        let (theirs, _) = ownStatus(of: m, tokens: tokens, clauses: clauses, cues: cues, names: names, ownerKnown: true)
        return (.someoneElse, owner, theirs)
    }

    /// The other person a medicine is "for", told right after its name ("Norco for my husband",
    /// "the Tylenol is for my son"): the index of the person word, or `nil`.
    static func recipientAfter(_ m: PhraseMatcher.Match, tokens: [Token], people: PersonLexicon) -> Int? {
        var j = m.last + 1
        if j < tokens.count, ["is", "was", "are", "were", "thats", "its"].contains(tokens[j].text) { j += 1 }
        guard j < tokens.count, tokens[j].text == "for" else { return nil }
        for k in (j + 1)..<min(tokens.count, j + 4) {
            guard tokens[k].isWordLike else { return nil }
            switch people.reference(tokens[k].text) {
            case .other?: return k
            case .firstPerson?: if tokens[k].text == "me" || tokens[k].text == "myself" { return nil }
            default: if !["my", "our", "his", "her", "their", "the", "a", "little", "old", "elderly"].contains(tokens[k].text) { return nil }
            }
        }
        return nil
    }

    /// A person noun made of an age: "my 15 year old", "our 2 yo" ("yo" reads "years old").
    static func isAgeNoun(at i: Int, tokens: [Token]) -> Bool {
        guard tokens[i].text == "old", i >= 1 else { return false }
        return ["year", "years", "yr", "yrs", "month", "months", "week", "weeks", "day", "days"].contains(tokens[i - 1].text)
    }

    /// Verbs by which someone takes a medicine that is not theirs ("he took a couple of my Ativan").
    static let takingVerbs: Set<String> = [
        "took", "take", "takes", "taking", "taken", "borrowed", "borrow", "borrows", "borrowing", "stole", "steals",
        "stealing", "grabbed", "used", "uses", "using", "tried", "had", "has", "popped", "swallowed", "got", "into",
    ]
    /// Words of quantity between such a verb and "my" ("a couple of", "some of", "two of").
    static let quantityWords: Set<String> = [
        "a", "an", "some", "of", "couple", "few", "one", "two", "three", "several", "handful", "bunch", "pill", "pills",
        "tablet", "tablets", "dose", "doses", "more", "extra", "the", "rest",
    ]

    /// For "my" at `i`: the other person who took what is mine ("he took a couple of my Ativan",
    /// "my son got into my Xanax"), as the index of the person word; `nil` when none did.
    private func takerOfMine(at i: Int, tokens: [Token]) -> Int? {
        var k = i - 1
        while k >= 0, tokens[k].kind == .word || tokens[k].kind == .number, Self.quantityWords.contains(tokens[k].text) || tokens[k].kind == .number { k -= 1 }
        guard k >= 1, Self.takingVerbs.contains(tokens[k].text) else { return nil }
        var j = k - 1
        while j >= 0, j >= k - 4, tokens[j].isWordLike {
            switch people.reference(tokens[j].text) {
            case .other?: return j
            case .firstPerson?, .generic?: return nil
            case nil: j -= 1
            }
        }
        return nil
    }

    private func ownStatus(
        of m: PhraseMatcher.Match, tokens: [Token], clauses: ClauseMap,
        cues: (MedicationCue) -> [PhraseMatcher.Match], names: [PhraseMatcher.Match], ownerKnown: Bool = false
    ) -> (MedicationMention.Status, Int?) {
        let clause = clauses.clause[m.first]
        func before(_ c: PhraseMatcher.Match) -> Bool { c.last < m.first && clauses.clause[c.last] == clause }
        func overlaps(_ a: PhraseMatcher.Match, _ b: PhraseMatcher.Match) -> Bool { a.first <= b.last && b.first <= a.last }
        let pseudo = cues(.pseudoNegation)

        // An animal named nearer than any person in the clause ("…and the vet gave our dog
        // tramadol") owns it.
        if !ownerKnown, !animals.isEmpty {
            var i = m.first - 1
            while i >= 0, clauses.clause[i] == clause, people.reference(tokens[i].text) == nil {
                if animals.contains(tokens[i].text) { return (.someoneElse, i) }
                i -= 1
            }
        }
        // "Ambien for me and Norco for my husband": a medicine "for" another person is theirs.
        if !ownerKnown, let other = Self.recipientAfter(m, tokens: tokens, people: people) { return (.someoneElse, other) }
        // Whose medicine: a "gave me"-type cue makes it the patient's; else the nearest person word.
        let selfCue = ownerKnown || cues(.selfCue).contains(where: before) || Self.writerTakesItAfter(m, tokens: tokens)
        if !selfCue {
            var i = m.first - 1
            search: while i >= 0 {
                if Self.isAgeNoun(at: i, tokens: tokens) { return (.someoneElse, i) }
                switch people.reference(tokens[i].text) {
                case .firstPerson?:
                    if tokens[i].text == "my", let taker = takerOfMine(at: i, tokens: tokens) { return (.someoneElse, taker) }
                    break search
                case .other?:
                    // "they started me on…", "they're starting linezolid": a plural pronoun
                    // before a prescribing verb is the care team, not another patient.
                    if Self.careTeamPronouns.contains(tokens[i].text), Self.isPrescribing(after: i, tokens: tokens) {
                        i -= 1
                        continue
                    }
                    return (.someoneElse, i)
                default: i -= 1
                }
            }
        }
        // Negated: "I don't take any blood thinners". The medicine a "with" names is the one the
        // patient takes, not the one negated ("I shouldn't take Advil with my warfarin").
        for n in cues(.negation) where before(n) && !pseudo.contains(where: { overlaps($0, n) }) {
            let gap = tokens[(n.last + 1)..<m.first].filter(\.isWordLike)
            guard gap.count <= 4 else { continue }
            // "with" ends it only after another medicine ("Advil with my warfarin"; but "not with nitrates").
            let ends = ((n.last + 1)..<m.first).contains { k in
                let w = tokens[k].text
                if w == "with" { return names.contains { $0.first > n.last && $0.last < k } }
                return Self.negationScopeEnds.contains(w)
            }
            if !ends { return (.notTaking, nil) }
        }
        func after(_ c: PhraseMatcher.Match) -> Bool { c.first > m.last && clauses.clause[c.first] == clause }
        // Ruled out after the name: "Viagra is off limits", "talked about amiodarone but decided against it".
        if let c = cues(.negationAfter).first(where: { $0.first > m.last && $0.first - m.last <= 8 && clauses.sentence[$0.first] == clauses.sentence[m.first] }),
           !names.contains(where: { $0.first > m.last && $0.last < c.first }) {
            return (.notTaking, nil)
        }
        // Stopped: "was stopped"/"anymore" after it in the clause; else the nearest stop, start or
        // use cue before it decides (a stop cue wins a tie: "stopped taking", "no longer on"); a
        // past time ("in 2019", "years ago") means stopped unless the patient says they started it.
        if cues(.stopAfter).contains(where: after) { return (.stopped, nil) }
        let lastStop = cues(.stop).filter(before).map(\.last).max() ?? -1
        let lastStart = cues(.start).filter(before).map(\.last).max() ?? -1
        let lastUse = cues(.use).filter(before).map(\.last).max() ?? -1
        if lastStop >= 0 && lastStop >= max(lastStart, lastUse) { return (.stopped, nil) }
        // Not across a comma ("had a stent put in in March, on Plavix"), unless the time opens
        // the sentence ("In 2019, I took Plavix").
        func noComma(_ a: Int, _ b: Int) -> Bool { !(a..<b).contains { tokens[$0].kind == .comma } }
        // "on warfarin since last year", "on xeralto since my clot in May": ongoing since then.
        func since(_ a: Int, _ b: Int) -> Bool { (a..<b).contains { tokens[$0].text == "since" } }
        let past = cues(.pastTime).contains { p in
            if after(p) { return noComma(m.last, p.first) && !since(m.last, p.first + 1) }
            guard before(p) else { return false }
            // "stopped fluoxetine 2 weeks ago and have been taking tramadol since": ongoing.
            if ((p.last + 1)..<m.first).contains(where: { Self.ongoingWords.contains(tokens[$0].text) })
                || (m.last + 1 < tokens.count && tokens[m.last + 1].text == "since") { return false }
            return noComma(p.last, m.first) || p.first == 0 || tokens[p.first - 1].kind == .boundary
                || (p.first >= 1 && ["back", "so", "and"].contains(tokens[p.first - 1].text) && (p.first == 1 || tokens[p.first - 2].kind == .boundary))
        }
        if past && lastStart < 0 { return (.stopped, nil) }
        return (.taking, nil)
    }
}
