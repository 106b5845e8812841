/// The contents of `Data/output_rules.json`.
struct OutputRulesData: Codable, Sendable {
    struct Count: Codable, Sendable {
        var patterns: [String]
        /// The number in the match must be at least this ("take 20 tablets").
        var minNumber: Double
    }

    struct Rule: Codable, Sendable {
        var id: String
        /// The safe message the stream sends instead of the held text.
        var replacement: String
        /// Whether a negation before the match ("do not stop taking") clears it.
        var negatable: Bool
        var patterns: [String]
        var counts: [Count]?
        var fixed: [String]?
        var exemptBefore: [String]
        var exemptAfter: [String]
    }

    struct DoseLimit: Codable, Sendable {
        var drug: String
        var names: [String]
        var maxSingleMg: Double
        var source: String
    }

    var about: String
    var negation: [String]
    var rules: [Rule]
    var doseLimits: [DoseLimit]
}

/// What the stream guard looks for in model output and what it sends instead: compiled once
/// from `Data/output_rules.json` and shared by every ``StreamGuard``.
///
/// Rules: `self_harm_method` (method or lethal-dose information), `dangerous_dose` (a dose
/// statement over a label's single-dose limit, "take 20 tablets", "double your dose"),
/// `stop_medication` (telling the patient to stop a medicine without their prescriber) and
/// `diagnosis_claim` ("you definitely have …").
public struct OutputPolicy: Sendable {
    /// The policy from the bundled data.
    public static let standard: OutputPolicy = {
        do {
            return try OutputPolicy()
        } catch {
            preconditionFailure("MedViewSafety: bundled output rules failed to load: \(error)")
        }
    }()

    /// What one automaton pattern means.
    struct PatternInfo: Sendable {
        var rule: Int
        /// Violation only if the match holds a number at least this large.
        var minNumber: Double?
        /// Violation only if the match holds a number larger than this (mg).
        var maxAllowed: Double?
    }

    let rules: [OutputRulesData.Rule]
    let matcher: PhraseMatcher
    let patternInfo: [PatternInfo]
    /// Cue payloads: 0 = negation; 1 + 2 × rule = before-exemption; 2 + 2 × rule = after-exemption.
    let cues: PhraseMatcher
    let normalizer: TextNormalizer

    /// Loads the bundled rules.
    public init() throws(SafetyDataError) {
        try self.init(data: SafetyData.decode(OutputRulesData.self, from: "output_rules.json"), language: SafetyData.language())
    }

    init(data: OutputRulesData, language: LanguageData) throws(SafetyDataError) {
        var patterns: [(String, Int)] = []
        var info: [PatternInfo] = []
        func add(_ p: String, _ i: PatternInfo) {
            patterns.append((p, info.count))
            info.append(i)
        }
        for (r, rule) in data.rules.enumerated() {
            for p in rule.patterns + (rule.fixed ?? []) { add(p, PatternInfo(rule: r)) }
            for c in rule.counts ?? [] {
                for p in c.patterns { add(p, PatternInfo(rule: r, minNumber: c.minNumber)) }
            }
        }
        guard let doseRule = data.rules.firstIndex(where: { $0.id == "dangerous_dose" }) else {
            throw .unknownReference("output_rules.json", "rule dangerous_dose")
        }
        for limit in data.doseLimits {
            let names = "(" + limit.names.joined(separator: "|") + ")"
            for p in ["take <num> (mg|milligrams) (of|) \(names)", "\(names) <num> (mg|milligrams) at (once|a time)", "take <num> (mg|milligrams) (at once|at a time|in one dose)"] {
                add(p, PatternInfo(rule: doseRule, maxAllowed: limit.maxSingleMg))
            }
        }
        var cuePatterns: [(String, Int)] = data.negation.map { ($0, 0) }
        for (r, rule) in data.rules.enumerated() {
            cuePatterns += rule.exemptBefore.map { ($0, 1 + 2 * r) }
            cuePatterns += rule.exemptAfter.map { ($0, 2 + 2 * r) }
        }
        let compiler = PhraseCompiler(language: language)
        self.rules = data.rules
        self.matcher = try compiler.matcher(patterns, skipFillers: false, fuzzy: false)
        self.cues = try compiler.matcher(cuePatterns, skipFillers: false, fuzzy: false)
        self.patternInfo = info
        self.normalizer = TextNormalizer(language: language, knownWords: matcher.vocabulary.union(cues.vocabulary))
    }

    /// Words a negation reaches forward ("do not, under any circumstances, stop taking").
    static let negationReach = 6

    /// How a match stands given its clause so far.
    enum Decision: Equatable {
        /// Not a violation (the number is small, or a negation or exemption clears it).
        case clear
        /// A violation of rule `rules[i]`.
        case violation(Int)
        /// Could still be cleared by the rest of the clause.
        case undecided
    }

    /// Decides one match against its clause (`clause` holds the clause's tokens so far, `match`
    /// indexes into it; `complete` says whether the clause has ended).
    func decide(_ match: PhraseMatcher.Match, in clause: [Token], complete: Bool) -> Decision {
        let info = patternInfo[match.payload]
        let span = clause[match.first...match.last]
        if let minimum = info.minNumber, !span.contains(where: { ($0.value ?? 0) >= minimum }) {
            return .clear
        }
        if let allowed = info.maxAllowed, !span.contains(where: { $0.kind == .number && ($0.value ?? 0) > allowed }) {
            return .clear
        }
        let rule = info.rule
        for cue in cues.matches(in: clause) {
            if cue.payload == 0, rules[rule].negatable, cue.last < match.first,
               clause[(cue.last + 1)..<match.first].filter(\.isWordLike).count <= Self.negationReach { return .clear }
            if cue.payload == 1 + 2 * rule, cue.first < match.first { return .clear }
            if cue.payload == 2 + 2 * rule, cue.first > match.last { return .clear }
        }
        if !complete && !rules[rule].exemptAfter.isEmpty { return .undecided }
        return .violation(rule)
    }
}
