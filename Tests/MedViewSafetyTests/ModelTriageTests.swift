import Dispatch
import Testing
@testable import MedViewSafety

@Suite struct ModelTriageTests {
    @Test func modelNamingAMissedEmergencyGivesTheProductsOwnGuidance() async {
        // A generous budget: the model answers at once, and a loaded CI machine (other suites keep
        // the concurrency pool busy for a minute or more) must not time it out.
        let triage = ModelTriage(budget: .seconds(900)) { _, _ in "sepsis" }
        let outcome = await triage.triage("I've had a UTI and now I'm confused and shaking", deterministic: nil)
        guard case .alert(let a) = outcome else { Issue.record("expected an alert, got \(outcome)"); return }
        #expect(a.category == "sepsis")
        #expect(a.guidance.contains("911"))
        #expect(triage.counters.count("alert") == 1)
    }

    @Test func theDetectorsAlertStandsAndTheModelIsNotAsked() async {
        let asked = ModelTriage.Counters()
        let triage = ModelTriage(counters: asked) { _, _ in
            Issue.record("the model must not be asked when the detector alerted")
            return "none"
        }
        let alert = EmergencyDetector.shared.assess("I have crushing chest pain going down my left arm")
        #expect(alert != nil)
        #expect(await triage.triage("I have crushing chest pain going down my left arm", deterministic: alert) == .skipped)
        #expect(asked.count("skipped") == 1)
    }

    @Test func aSlowModelShowsNothingAndIsCountedWithinTheBudget() async {
        let triage = ModelTriage(budget: .milliseconds(100)) { _, _ in
            // Ignores cancellation on purpose: the budget must hold anyway.
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                DispatchQueue.global().asyncAfter(deadline: .now() + 600) { c.resume() }
            }
            return "cardiac"
        }
        let clock = ContinuousClock()
        let start = clock.now
        let outcome = await triage.triage("my chest feels odd", deterministic: nil)
        #expect(outcome == .timedOut)
        // Long before the classifier's 600 s, however busy the pool is.
        #expect(clock.now - start < .seconds(300))
        #expect(triage.counters.count("timed_out") == 1)
    }

    @Test func theCategoryWordIsTrimmedAsFoundationTrimsIt() {
        // What the check did before it trimmed without Foundation: the same replies must give the same word.
        func reference(_ reply: String) -> String? {
            let trimmed = reply.lowercased().trimmingCharacters(in: .whitespacesAndNewlines.union(.punctuationCharacters).union(.symbols))
            guard !trimmed.isEmpty, trimmed.allSatisfy({ ($0.isLetter && $0.isASCII) || $0 == "_" }) else { return nil }
            return SafetyPrompt.triageCategories.contains(trimmed) ? trimmed : nil
        }
        let rambling = String(repeating: "The quick brown fox jumps over the lazy dog. ", count: 40)
        let replies = [
            " None.\n", "**cardiac**", "«stroke»", "\u{3000}sepsis\u{3000}", "Cardiac!!!", "—diabetic—", "\u{00A0}pediatric\u{00A0}",
            "\u{2028}seizure\u{2029}", "\u{85}bleeding\t", "HEAD_INJURY", "_cardiac_", "☎️ poisoning", "☎ poisoning",
            "anaphylaxis\u{0301}", "suicide$", "+unconscious=", "pregnancy…", "¿none?", "", "   ", "...", "no ne", "cardiac." + rambling,
            rambling, "\u{212A}", "STROKE", "stroke\r\n\r\n", "'none'", "(cardiac)", "[sepsis]", "{diabetic}", "1) cardiac", "cardiac 3",
        ]
        for reply in replies {
            #expect(ModelTriage.category(in: reply) == reference(reply), "\(reply.prefix(40))")
        }
        // One difference, on purpose: symbols newer than Foundation's tables on Linux (most emoji)
        // are trimmed as the symbols they are, so a model that decorates its word is still read.
        #expect(ModelTriage.category(in: "🚑 breathing") == "breathing")
        #expect(ModelTriage.category(in: "stroke 🧠") == "stroke")
    }

    @Test func aFailingOrRamblingModelShowsNothing() async {
        struct Down: Error {}
        let failing = ModelTriage(budget: .seconds(900)) { _, _ in throw Down() }
        #expect(await failing.triage("hello", deterministic: nil) == .failed)
        let rambling = ModelTriage(budget: .seconds(900)) { _, _ in "I think this might be cardiac but I'm not sure" }
        #expect(await rambling.triage("hello", deterministic: nil) == .unparsable)
        // A list number or a second word is not one category word ("3. diabetic", "not diabetic").
        for reply in ["3. diabetic", "not diabetic", "diabetic 3", "1) cardiac"] {
            #expect(ModelTriage.category(in: reply) == nil, "\(reply)")
        }
        #expect(ModelTriage.category(in: "Head_injury.") == "head_injury")
        let clear = ModelTriage(budget: .seconds(900)) { _, _ in " None.\n" }
        #expect(await clear.triage("how much water should I drink", deterministic: nil) == .clear)
    }

    @Test func theTriageModelIsGivenTheRulesAndTheMessage() async {
        let seen = ModelTriage.Counters()
        let triage = ModelTriage(budget: .seconds(900), counters: seen) { system, message in
            #expect(system.contains("BE-FAST"))
            #expect(system.contains("exactly one word"))
            #expect(message == "my baby is floppy")
            return "pediatric"
        }
        guard case .alert(let a) = await triage.triage("my baby is floppy", deterministic: nil) else { Issue.record("no alert"); return }
        #expect(a.category == "pediatric")
    }

    @Test func everyTriageCategoryHasGuidance() {
        for c in SafetyPrompt.triageCategories where c != "none" {
            let a = EmergencyDetector.shared.assessment(category: c, bystander: nil)
            #expect(a != nil, "no guidance for \(c)")
            #expect(a.map { $0.actions.contains { $0.href.hasPrefix("tel:") } } ?? false)
        }
    }

    @Test func theSystemPromptStatesEmergencyAndMedicationRules() {
        let p = SafetyPrompt.systemPrompt
        #expect(p.hasPrefix(SafetyFraming.systemPrompt))
        for needle in ["911", "988", "1-800-222-1222", "transient", "sepsis", "serotonergic", "CYP3A4", "simvastatin", "MAO inhibitor"] {
            #expect(p.contains(needle), "system prompt lacks \(needle)")
        }
        #expect(SafetyPrompt.systemPrompt(notes: ["NOTE"]).hasSuffix("\n\nNOTE"))
    }
}
