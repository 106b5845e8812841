import Foundation

/// Runs the evaluation sets in `Data/eval/` and scores the detector and the checker.
///
/// - `emergency.jsonl`: one message per line with `expect` (a category, or `null` for a hard
///   negative), optional `also` (other acceptable categories) and `trap` (what the case tests).
///   A positive is found when the detector's main category is `expect` or in `also`.
/// - `interactions.jsonl`: one conversation per line (`messages`) with the warned pairs
///   expected over the whole conversation (`expect`) and its `trap`. Each warning is scored
///   once: a repeated or unexpected warning is a false positive.
public enum SafetyEvaluation {
    /// Recall and precision for one row of the report.
    public struct Score: Sendable, Equatable {
        /// Category, interaction group or trap name.
        public var name: String
        /// Positive cases (or expected pairs) in this row.
        public var expected: Int
        /// Of those, found correctly.
        public var found: Int
        /// Alerts or warnings given for this row that were wrong.
        public var falsePositives: Int

        /// found / expected (1 when nothing is expected).
        public var recall: Double { expected == 0 ? 1 : Double(found) / Double(expected) }
        /// found / (found + falsePositives) (1 when nothing was reported).
        public var precision: Double { found + falsePositives == 0 ? 1 : Double(found) / Double(found + falsePositives) }
    }

    /// Accuracy on one kind of trap: how many cases of that kind came out right.
    public struct TrapScore: Sendable, Equatable {
        /// The trap's name (`negation`, `history`, `stopped`, …).
        public var trap: String
        /// Cases of this kind.
        public var cases: Int
        /// Of those, how many came out right.
        public var correct: Int
    }

    /// The whole evaluation.
    public struct Report: Sendable {
        /// Emergency detection per category.
        public var emergency: [Score]
        /// Emergency detection overall: any alert on a positive counts as found, any alert on a
        /// negative is a false positive.
        public var emergencyOverall: Score
        /// Emergency cases by trap.
        public var emergencyTraps: [TrapScore]
        /// Interaction warnings per interaction group.
        public var interactions: [Score]
        /// Interaction warnings overall, by pair.
        public var interactionsOverall: Score
        /// Interaction conversations by trap.
        public var interactionTraps: [TrapScore]
        /// Cases that came out wrong, one line each.
        public var failures: [String]
        /// Emergency detection by the signal phrases and red-flag rules alone, without the
        /// learned reader (any alert counting), when measured.
        public var rulesOnlyEmergency: Score?
        /// Mean time of one ``EmergencyDetector/assess(_:)`` call over the set, in microseconds.
        public var meanAssessMicroseconds: Double
        /// Mean time of one ``MedicationChecker/check(_:context:)`` call, in microseconds.
        public var meanCheckMicroseconds: Double

        /// The second set (`*_holdout.jsonl`), written after the rules (its first run guided four
        /// fixes, see docs/SAFETY.md): emergency detection, any alert counting.
        public var heldOutEmergency: Score?
        /// Interaction pairs of the second set.
        public var heldOutInteractions: Score?
        /// Cases of the second set that came out wrong.
        public var heldOutFailures: [String]
        /// The third set (`*_blind.jsonl`), written by an engineer who had not seen the rules or the
        /// other sets (first run: docs/safety/blind-first-run.txt): emergency detection, any alert counting.
        public var blindEmergency: Score?
        /// Interaction pairs of the third set.
        public var blindInteractions: Score?
        /// Cases of the third set that came out wrong.
        public var blindFailures: [String] = []

        /// Set A (`fresh_a_*.jsonl`), written by an independent writer; its first run on the
        /// unchanged system is docs/safety/fresh-a-first-run.md, and it has been a training set
        /// since: emergency detection, any alert counting.
        public var freshAEmergency: Score?
        /// Interaction pairs of set A.
        public var freshAInteractions: Score?
        /// Cases of set A that came out wrong.
        public var freshAFailures: [String] = []

        /// Whether the aims of issue 13 hold: emergency recall ≥ 98% and precision ≥ 95%;
        /// interaction recall and precision ≥ 95%.
        public var meetsAims: Bool {
            emergencyOverall.recall >= 0.98 && emergencyOverall.precision >= 0.95
                && interactionsOverall.recall >= 0.95 && interactionsOverall.precision >= 0.95
        }

        /// The report as a plain-text table.
        public var text: String {
            func pct(_ x: Double) -> String { String(format: "%6.1f%%", x * 100) }
            func row(_ s: Score) -> String {
                s.name.padding(toLength: 28, withPad: " ", startingAt: 0)
                    + String(format: "%5d %5d %5d  ", s.expected, s.found, s.falsePositives) + pct(s.recall) + "  " + pct(s.precision)
            }
            func trapRow(_ t: TrapScore) -> String {
                t.trap.padding(toLength: 28, withPad: " ", startingAt: 0) + String(format: "%5d %5d  ", t.cases, t.correct)
                    + pct(t.cases == 0 ? 1 : Double(t.correct) / Double(t.cases))
            }
            let header = "name".padding(toLength: 28, withPad: " ", startingAt: 0) + "  exp found    fp   recall  precision"
            var lines: [String] = []
            lines.append("Emergency detection (\(emergencyTraps.reduce(0) { $0 + $1.cases }) messages)")
            lines.append(header)
            lines += emergency.map(row)
            lines.append(row(emergencyOverall))
            if let r = rulesOnlyEmergency { lines.append(row(r)) }
            lines.append("")
            lines.append("by trap".padding(toLength: 28, withPad: " ", startingAt: 0) + "cases  right  accuracy")
            lines += emergencyTraps.map(trapRow)
            lines.append("")
            lines.append("Medication interactions (\(interactionTraps.reduce(0) { $0 + $1.cases }) conversations, scored by pair)")
            lines.append(header)
            lines += interactions.map(row)
            lines.append(row(interactionsOverall))
            lines.append("")
            lines.append("by trap".padding(toLength: 28, withPad: " ", startingAt: 0) + "cases  right  accuracy")
            lines += interactionTraps.map(trapRow)
            lines.append("")
            lines.append(String(format: "assess(): %.1f µs per message; check(): %.1f µs per message (mean, this build)", meanAssessMicroseconds, meanCheckMicroseconds))
            lines.append("Aims (emergency recall ≥ 98%, precision ≥ 95%; interactions ≥ 95%/95%): " + (meetsAims ? "met" : "NOT met"))
            if !failures.isEmpty {
                lines.append("")
                lines.append("Failures:")
                lines += failures.map { "  " + $0 }
            }
            func extraSet(_ title: String, _ emergency: Score?, _ interactions: Score?, _ failures: [String]) {
                guard let e = emergency, let i = interactions else { return }
                lines.append("")
                lines.append(title)
                lines.append(header)
                lines.append(row(Score(name: "emergency (any alert)", expected: e.expected, found: e.found, falsePositives: e.falsePositives)))
                lines.append(row(Score(name: "interaction pairs", expected: i.expected, found: i.found, falsePositives: i.falsePositives)))
                lines += failures.map { "  " + $0 }
            }
            extraSet("Second set (written after the rules; its first run, 24/28 found and 1 false alert, showed 4 gaps fixed since: docs/SAFETY.md)", heldOutEmergency, heldOutInteractions, heldOutFailures)
            extraSet("Set A, fresh (independent writer; first run on the unchanged system 123/235 emergencies with 23 false alerts, 73/173 pairs with 22 false warnings — docs/safety/fresh-a-first-run.md; a TRAINING set since)", freshAEmergency, freshAInteractions, freshAFailures)
            extraSet("Third set, blind (written without sight of the rules; first run 93/114 emergencies with no false alert, 61/71 pairs with 4 false warnings — docs/safety/blind-first-run.txt; rules changed since, so it is no longer unseen)", blindEmergency, blindInteractions, blindFailures)
            return lines.joined(separator: "\n")
        }
    }

    /// One emergency case. Fields other than these (`source`, notes) are ignored; `also` may be
    /// one category or a list, and `trap` may be missing.
    struct EmergencyCase: Decodable {
        var id: String
        var text: String
        var expect: String?
        var also: [String]?
        var trap: String

        enum CodingKeys: String, CodingKey { case id, text, expect, also, trap }

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            id = try c.decode(String.self, forKey: .id)
            text = try c.decode(String.self, forKey: .text)
            expect = try c.decodeIfPresent(String.self, forKey: .expect)
            if let list = try? c.decodeIfPresent([String].self, forKey: .also) {
                also = list
            } else if let one = try? c.decodeIfPresent(String.self, forKey: .also) {
                also = [one]
            }
            trap = (try? c.decodeIfPresent(String.self, forKey: .trap)) ?? (expect == nil ? "negative" : "positive")
        }
    }

    /// One interaction conversation. `also` lists pairs that may be warned about without counting
    /// as found or as false (a warning a pharmacist would accept but the case does not require);
    /// other fields (`source`, notes) are ignored.
    struct InteractionCase: Decodable {
        var id: String
        var messages: [String]
        var expect: [[String]]
        var also: [[String]]
        var trap: String

        enum CodingKeys: String, CodingKey { case id, messages, expect, also, trap }

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            id = try c.decode(String.self, forKey: .id)
            messages = try c.decode([String].self, forKey: .messages)
            expect = try c.decodeIfPresent([[String]].self, forKey: .expect) ?? []
            also = ((try? c.decodeIfPresent([[String]].self, forKey: .also)) ?? nil)?.map { $0.map { $0.lowercased() }.sorted() } ?? []
            trap = (try? c.decodeIfPresent(String.self, forKey: .trap)) ?? (expect.isEmpty ? "negative" : "positive")
        }
    }

    /// Runs both sets with the bundled detector and checker.
    public static func run() throws(SafetyDataError) -> Report {
        try run(detector: EmergencyDetector(), checker: MedicationChecker())
    }

    /// Adds the rules-alone figure (no learned reader) for an emergency set to a report.
    static func withRulesOnly(_ report: Report, emergencyFile: String) throws(SafetyDataError) -> Report {
        let rules = try EmergencyDetector.rulesOnly()
        var score = Score(name: "  signals and rules alone", expected: 0, found: 0, falsePositives: 0)
        for c in try SafetyData.decodeLines(EmergencyCase.self, from: emergencyFile) {
            let alert = rules.assess(c.text) != nil
            if c.expect != nil {
                score.expected += 1
                if alert { score.found += 1 }
            } else if alert {
                score.falsePositives += 1
            }
        }
        var out = report
        out.rulesOnlyEmergency = score
        return out
    }

    /// Scores the bundled detector and checker on other sets: absolute paths to JSON Lines files in
    /// the layout above (for example a new set, before anyone tunes the rules to it).
    public static func run(emergencyFile: String, interactionFile: String) throws(SafetyDataError) -> Report {
        try withRulesOnly(
            run(detector: EmergencyDetector(), checker: MedicationChecker(), emergencyFile: emergencyFile, interactionFile: interactionFile),
            emergencyFile: emergencyFile
        )
    }

    static func run(detector: EmergencyDetector, checker: MedicationChecker) throws(SafetyDataError) -> Report {
        var report = try run(detector: detector, checker: checker, emergencyFile: "eval/emergency.jsonl", interactionFile: "eval/interactions.jsonl")
        let held = try run(detector: detector, checker: checker, emergencyFile: "eval/emergency_holdout.jsonl", interactionFile: "eval/interactions_holdout.jsonl")
        report.heldOutEmergency = held.emergencyOverall
        report.heldOutInteractions = held.interactionsOverall
        report.heldOutFailures = held.failures
        let blind = try run(detector: detector, checker: checker, emergencyFile: "eval/emergency_blind.jsonl", interactionFile: "eval/interactions_blind.jsonl")
        report.blindEmergency = blind.emergencyOverall
        report.blindInteractions = blind.interactionsOverall
        report.blindFailures = blind.failures
        let freshA = try run(detector: detector, checker: checker, emergencyFile: "eval/fresh_a_emergency.jsonl", interactionFile: "eval/fresh_a_interactions.jsonl")
        report.freshAEmergency = freshA.emergencyOverall
        report.freshAInteractions = freshA.interactionsOverall
        report.freshAFailures = freshA.failures
        return report
    }

    static func run(detector: EmergencyDetector, checker: MedicationChecker, emergencyFile: String, interactionFile: String) throws(SafetyDataError) -> Report {
        let emergencyCases = try SafetyData.decodeLines(EmergencyCase.self, from: emergencyFile)
        let interactionCases = try SafetyData.decodeLines(InteractionCase.self, from: interactionFile)
        var failures: [String] = []

        // Emergency: per category and overall.
        var categories: [String] = []
        for c in emergencyCases { if let e = c.expect, !categories.contains(e) { categories.append(e) } }
        var byCategory: [String: Score] = [:]
        for c in categories { byCategory[c] = Score(name: c, expected: 0, found: 0, falsePositives: 0) }
        var overall = Score(name: "all categories (any alert)", expected: 0, found: 0, falsePositives: 0)
        var traps: [String: TrapScore] = [:]
        let clock = ContinuousClock()
        var assessTime = Duration.zero
        for c in emergencyCases {
            let start = clock.now
            let result = detector.assess(c.text)
            assessTime += clock.now - start
            let acceptable = c.expect.map { [$0] + (c.also ?? []) } ?? []
            let predicted = result?.category
            let correct = c.expect == nil ? predicted == nil : predicted.map(acceptable.contains) ?? false
            if let e = c.expect {
                byCategory[e]!.expected += 1
                overall.expected += 1
                if correct { byCategory[e]!.found += 1 }
                if predicted != nil { overall.found += 1 }
            } else if predicted != nil {
                overall.falsePositives += 1
            }
            if let p = predicted, !acceptable.contains(p) {
                byCategory[p, default: Score(name: p, expected: 0, found: 0, falsePositives: 0)].falsePositives += 1
            }
            traps[c.trap, default: TrapScore(trap: c.trap, cases: 0, correct: 0)].cases += 1
            if correct { traps[c.trap]!.correct += 1 } else {
                failures.append("\(c.id) [\(c.trap)] expected \(c.expect ?? "none"), got \(predicted ?? "none"): \(c.text)")
            }
        }

        // Interactions: by pair.
        var groups: [String: Score] = [:]
        var pairOverall = Score(name: "all pairs", expected: 0, found: 0, falsePositives: 0)
        var interactionTraps: [String: TrapScore] = [:]
        var checkTime = Duration.zero
        var checks = 0
        // An expected name is matched through the lexicon, so a set may write "potassium
        // chloride", "St. John's wort" or "sulfamethoxazole/trimethoprim" for the generic the
        // checker reports; a combination stands for each of its ingredients.
        var canonicalCache: [String: Set<String>] = [:]
        func canonical(_ name: String) -> Set<String> {
            if let c = canonicalCache[name] { return c }
            var out: Set<String> = [name]
            for m in checker.mentions(in: name) { out.insert(m.name) }
            canonicalCache[name] = out
            return out
        }
        // A warned combination kept as one generic ("sulfamethoxazole-trimethoprim") also
        // stands for each of its ingredients, so a set may expect "trimethoprim".
        func names(_ warned: String) -> [String] {
            warned.contains("-") ? [warned] + warned.split(separator: "-").map(String.init) : [warned]
        }
        func same(_ warned: [String], _ expected: [String]) -> Bool {
            guard warned.count == 2, expected.count == 2 else { return warned == expected }
            let a = canonical(expected[0]), b = canonical(expected[1])
            let x = names(warned[0]), y = names(warned[1])
            return (x.contains(where: a.contains) && y.contains(where: b.contains)) || (y.contains(where: a.contains) && x.contains(where: b.contains))
        }
        func group(_ pair: [String]) -> String {
            guard pair.count == 2 else { return "unlisted" }
            for x in canonical(pair[0]).sorted() {
                for y in canonical(pair[1]).sorted() {
                    if let g = checker.interaction(x, y)?.group { return g }
                }
            }
            return "unlisted"
        }
        for c in interactionCases {
            var context = MedicationContext()
            var got: [[String]] = []
            for m in c.messages {
                let start = clock.now
                got += checker.check(m, context: &context).map(\.drugs)
                checkTime += clock.now - start
                checks += 1
            }
            var expected = c.expect.map { $0.map { $0.lowercased() }.sorted() }
            var ok = true
            for pair in expected {
                let g = group(pair)
                groups[g, default: Score(name: g, expected: 0, found: 0, falsePositives: 0)].expected += 1
                pairOverall.expected += 1
            }
            // A combination product expected as one pair ("lisinopril" with "sacubitril/valsartan")
            // is warned once per ingredient: the second warning is the same pair, not a false one.
            var matched: [[String]] = []
            for pair in got {
                let g = group(pair)
                if let i = expected.firstIndex(where: { same(pair, $0) }) {
                    matched.append(expected.remove(at: i))
                    groups[g]!.found += 1
                    pairOverall.found += 1
                } else if c.also.contains(where: { same(pair, $0) }) || matched.contains(where: { same(pair, $0) }) {
                    continue
                } else {
                    groups[g, default: Score(name: g, expected: 0, found: 0, falsePositives: 0)].falsePositives += 1
                    pairOverall.falsePositives += 1
                    ok = false
                }
            }
            if !expected.isEmpty { ok = false }
            interactionTraps[c.trap, default: TrapScore(trap: c.trap, cases: 0, correct: 0)].cases += 1
            if ok { interactionTraps[c.trap]!.correct += 1 } else {
                failures.append("\(c.id) [\(c.trap)] expected \(c.expect), got \(got): \(c.messages.joined(separator: " | "))")
            }
        }
        func micros(_ d: Duration, _ n: Int) -> Double {
            n == 0 ? 0 : (Double(d.components.seconds) * 1e6 + Double(d.components.attoseconds) / 1e12) / Double(n)
        }
        return Report(
            emergency: categories.compactMap { byCategory[$0] } + byCategory.keys.filter { !categories.contains($0) }.sorted().compactMap { byCategory[$0] },
            emergencyOverall: overall,
            emergencyTraps: traps.values.sorted { $0.trap < $1.trap },
            interactions: groups.values.sorted { $0.name < $1.name },
            interactionsOverall: pairOverall,
            interactionTraps: interactionTraps.values.sorted { $0.trap < $1.trap },
            failures: failures,
            meanAssessMicroseconds: micros(assessTime, emergencyCases.count),
            meanCheckMicroseconds: micros(checkTime, checks),
            heldOutEmergency: nil, heldOutInteractions: nil, heldOutFailures: []
        )
    }
}

extension SafetyEvaluation {
    /// The learned reader's training rows for an emergency set (absolute path to JSON Lines in
    /// the layout of `Data/eval/emergency.jsonl`): per case, one JSON object with its `id`,
    /// `expect`, `also`, `trap`, what the signals and rules alone found (`rules`: a category or
    /// `null`) and the reader's `features` (``EmergencyDetector/features(of:)``).
    public static func readerRows(emergencyFile: String) throws(SafetyDataError) -> [String] {
        let detector = try EmergencyDetector.rulesOnly()
        let cases = try SafetyData.decodeLines(EmergencyCase.self, from: emergencyFile)
        struct Row: Encodable {
            var id: String
            var expect: String?
            var also: [String]
            var trap: String
            var rules: String?
            var features: [String]
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return cases.map { c in
            let row = Row(id: c.id, expect: c.expect, also: c.also ?? [], trap: c.trap, rules: detector.assess(c.text)?.category, features: detector.features(of: c.text))
            // Encoding strings and arrays cannot fail.
            return String(decoding: (try? encoder.encode(row)) ?? Data(), as: UTF8.self)
        }
    }
}
