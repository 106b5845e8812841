import Testing
@testable import MedViewSafety

/// The learned reader (``EmergencyReader``): how its verdicts combine with the rules, that a
/// model it cannot use is refused, and that the bundled model is wired into the detector.
@Suite struct EmergencyReaderTests {
    /// A model over made-up words, so the tests do not depend on what the bundled one learned:
    /// "quorble" reads as a heart attack, "snarfle" as nothing at all.
    static func model(threshold: Double = 0.5, schema: Int = EmergencyReader.schema) -> EmergencyReader.Model {
        EmergencyReader.Model(
            schema: schema, classes: ["none", "cardiac", "stroke"], bias: [2, 0, 0], threshold: threshold,
            weights: ["w:quorble": [[1, 8]], "w:snarfle": [[0, 9]]]
        )
    }

    @Test func addsAnAlertTheRulesMissedWithTheProductsOwnGuidance() throws {
        let detector = try EmergencyDetector(reader: Self.model())
        let own = try #require(detector.assess("I feel quorble"))
        #expect(own.category == "cardiac")
        #expect(own.guidance == detector.assessment(category: "cardiac", bystander: nil)?.guidance)
        #expect(!own.isBystander)
        let dad = try #require(detector.assess("my dad says he feels quorble"))
        #expect(dad.isBystander && dad.gender == .male)
        #expect(dad.guidance == detector.assessment(category: "cardiac", bystander: .male)?.guidance)
    }

    @Test func staysQuietBelowItsThreshold() throws {
        let detector = try EmergencyDetector(reader: Self.model())
        #expect(detector.assess("what should I eat for breakfast") == nil)
        // The made-up word is there, but so is the strongest "none" feature.
        #expect(detector.assess("quorble snarfle") == nil)
    }

    @Test func fictionGetsNoAlertFromTheReader() throws {
        let detector = try EmergencyDetector(reader: Self.model())
        #expect(detector.assess("In my novel the detective feels quorble") == nil)
    }

    // Building a detector takes seconds of CPU in a debug build: on a thread of its own, not the
    // Swift concurrency pool other suites need (onOwnThread).
    @Test func neverWithdrawsARuleAlert() async throws {
        let detector = try await onOwnThread { try EmergencyDetector(reader: Self.model()) }
        // The strongest "none" feature cannot take away what the rules found.
        #expect(detector.assess("I have crushing chest pain going down my left arm snarfle")?.category == "cardiac")
        #expect(detector.assess("I want to kill myself snarfle")?.category == "suicide")
    }

    @Test func aModelItCannotUseIsRefused() {
        #expect(throws: SafetyDataError.self) { try EmergencyReader(model: Self.model(schema: EmergencyReader.schema + 1)) }
        #expect(throws: SafetyDataError.self) { try EmergencyReader(model: Self.model(threshold: 1.5)) }
        var model = Self.model()
        model.classes = ["cardiac", "none", "stroke"]
        #expect(throws: SafetyDataError.self) { try EmergencyReader(model: model) }
        model = Self.model()
        model.weights["w:bad"] = [[7, 1]]
        #expect(throws: SafetyDataError.self) { try EmergencyReader(model: model) }
    }

    @Test func featuresAreTheDetectorsReadingOfTheMessage() throws {
        let detector = try EmergencyDetector(reader: nil)
        let f = Set(detector.features(of: "My chest feels tight, no fever. Had a stroke in 2019"))
        #expect(f.contains("w:chest") && f.contains("b:chest feels") && f.contains("c:<ch") && f.contains("p:self"))
        #expect(f.contains("k:negation"))
        #expect(f.contains { $0.hasPrefix("f:") })
        // A misspelling also gives the word it corrects to.
        #expect(Set(detector.features(of: "my chset hurts")).contains("w:chest"))
        #expect(detector.features(of: "My chest feels tight") == detector.features(of: "My chest feels tight"))
    }

    /// The detector hands the reader its features as rows of weights, each looked up once
    /// (``EmergencyDetector/readerRows(of:)``); the reader must see exactly what it sees by
    /// name, the features the training script gets (``EmergencyDetector/features(of:)``): the
    /// same probabilities (up to the order of the sums) and the same verdict, over every message
    /// of the bundled evaluation sets.
    @Test func theReaderSeesTheSameFeaturesByRowAsByName() async throws {
        let detector = try await onOwnThread { try EmergencyDetector() }
        var messages: [String] = []
        for set in ["emergency", "emergency_holdout", "emergency_blind", "fresh_a_emergency"] {
            messages += try SafetyData.decodeLines(SafetyEvaluation.EmergencyCase.self, from: "eval/\(set).jsonl").map(\.text)
        }
        #expect(messages.count > 500)
        var alerts = 0
        for message in messages {
            let (reader, rows) = try #require(detector.readerRows(of: message))
            let names = detector.features(of: message)
            #expect(rows == Set(names.compactMap { reader.row(of: $0) }).sorted(), "\(message)")
            let byRow = reader.probabilities(rows: rows), byName = reader.probabilities(names)
            #expect(zip(byRow, byName).allSatisfy { abs($0 - $1) < 1e-12 }, "\(message)")
            #expect(reader.emergency(rows: rows) == reader.emergency(in: names), "\(message)")
            if reader.emergency(rows: rows) != nil { alerts += 1 }
        }
        // The sets hold emergencies the reader catches, not only quiet messages.
        #expect(alerts > 50)
    }

    /// The bundled model loads with the bundled rules and catches emergencies told in words the
    /// rules were never written for (messages of the training sets: this checks the wiring,
    /// not how well it generalises — that is the unseen sets' job, docs/SAFETY.md).
    @Test func theBundledReaderIsPartOfTheDetector() async throws {
        let detector = try await onOwnThread { try EmergencyDetector() }
        #expect(detector.assess("Feels like an elephant is sitting on my chest and I'm drenched in sweat. I'm 58.") != nil)
        #expect(detector.assess("What should I pack for my trip to the beach next week?") == nil)
    }
}
