import Foundation
import Testing
@testable import MedViewSafety

/// The evaluations build the detector and checker from their data and run thousands of checks:
/// seconds of CPU each in a debug build. They run on threads of their own (``onOwnThread``), so the
/// Swift concurrency pool, which every other suite's timers and sockets need, is never held by them.
@Suite struct EvaluationTests {
    @Test func evaluationSetMeetsTheAims() async throws {
        let report = try await onOwnThread { try SafetyEvaluation.run() }
        #expect(report.emergencyOverall.expected >= 100)
        #expect(report.emergencyTraps.reduce(0) { $0 + $1.cases } >= 120)
        #expect(report.interactionTraps.reduce(0) { $0 + $1.cases } >= 80)
        #expect(report.emergencyOverall.recall == 1, "\(report.failures)")
        #expect(report.emergencyOverall.precision >= 0.95, "\(report.failures)")
        #expect(report.interactionsOverall.recall >= 0.95, "\(report.failures)")
        #expect(report.interactionsOverall.precision >= 0.95, "\(report.failures)")
        #expect(report.meetsAims)
        #expect(report.text.contains("Emergency detection"))
        #expect(report.heldOutEmergency != nil)
    }

    @Test func everyCategoryHasPositivesInTheSet() async throws {
        let report = try await onOwnThread { try SafetyEvaluation.run() }
        let categories = Set(report.emergency.filter { $0.expected > 0 }.map(\.name))
        #expect(categories == ["cardiac", "stroke", "breathing", "bleeding", "anaphylaxis", "poisoning", "suicide", "seizure", "unconscious", "head_injury", "pregnancy"])
    }

    /// A warning about a combination kept as one generic counts for a pair that names one of its
    /// ingredients; an unrelated pair still counts as a false warning.
    @Test func aCombinationWarningCountsForItsIngredient() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("eval-\(UInt64.random(in: 0...UInt64.max))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let emergency = dir.appendingPathComponent("e.jsonl"), interactions = dir.appendingPathComponent("i.jsonl")
        try #"{"id": "e1", "text": "what should I eat for breakfast", "expect": null}"#.write(to: emergency, atomically: true, encoding: .utf8)
        try #"""
            {"id": "i1", "messages": ["I'm on spironolactone and got Bactrim for a UTI."], "expect": [["spironolactone", "trimethoprim"]], "trap": "generic"}
            {"id": "i2", "messages": ["I'm on spironolactone and got Bactrim for a UTI."], "expect": [["spironolactone", "warfarin"]], "trap": "generic"}
            """#.write(to: interactions, atomically: true, encoding: .utf8)
        let report = try await onOwnThread { try SafetyEvaluation.run(emergencyFile: emergency.path, interactionFile: interactions.path) }
        #expect(report.interactionsOverall.expected == 2)
        #expect(report.interactionsOverall.found == 1)
        #expect(report.interactionsOverall.falsePositives == 1)
    }

    @Test func bundledDataLoads() async throws {
        try await onOwnThread {
            _ = try EmergencyDetector()
            _ = try MedicationChecker()
            _ = try OutputPolicy()
        }
    }

    @Test func vocabularyAuditFindsCollisionsAndTheDataProtectsThem() async throws {
        let found = try await onOwnThread { try SafetyVocabularyAudit.collisions(dictionary: ["cooking", "chocking", "alive", "doing", "zzzz"]) }
        // Protected words are already handled; only the deliberately correctable one remains.
        // (It is near a term of both emergency vocabularies: the signal phrases and the findings.)
        #expect(Set(found.map(\.word)) == ["chocking"])
        let unprotected = try await onOwnThread { try SafetyVocabularyAudit.collisions(dictionary: ["seizing", "breather"]) }
        #expect(unprotected.isEmpty)
    }

    @Test func framingNamesTheEmergencyNumbersAndNeverDiagnoses() {
        #expect(SafetyFraming.systemPrompt.contains("911"))
        #expect(SafetyFraming.systemPrompt.contains("988"))
        #expect(SafetyFraming.systemPrompt.contains("1-800-222-1222"))
        #expect(SafetyFraming.systemPrompt.contains("do not diagnose"))
        #expect(SafetyFraming.disclaimer.count < 140)
        let w = InteractionWarning(drugs: ["warfarin", "ibuprofen"], severity: "high", advice: "x", source: "y", interactionId: "z")
        #expect(SafetyFraming.note(for: [w])?.contains("ibuprofen + warfarin") == true)
        #expect(SafetyFraming.systemPrompt(notes: ["NOTE"]).hasSuffix("NOTE"))
    }
}
