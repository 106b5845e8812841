import Testing
@testable import MedViewSafety

/// Names spelled by ear: each class of misspelling that the fresh sets showed, by mechanism
/// (the measured rates are in `MisspellingMeasureTests` and docs/SAFETY.md).
@Suite struct DrugNameResolverTests {
    let checker = MedicationChecker.shared

    private func names(_ text: String) -> [String] { checker.mentions(in: text).map(\.name) }

    @Test func soundAlikeLettersShareAKey() {
        // x, cs, cks and ks sound alike; c before e, i, y is s; a final silent e goes.
        #expect(DrugNameResolver.key("plavics") == DrugNameResolver.key("plavix"))
        #expect(DrugNameResolver.key("plavicks") == DrugNameResolver.key("plavix"))
        #expect(DrugNameResolver.key("symbalta") == DrugNameResolver.key("cymbalta"))
        #expect(DrugNameResolver.key("aldacton") == DrugNameResolver.key("aldactone"))
        #expect(DrugNameResolver.key("orapp") == DrugNameResolver.key("orap"))
        #expect(DrugNameResolver.key("zanax") == DrugNameResolver.key("xanax"))
    }

    @Test func vowelsCostLessThanConsonants() {
        let a = Array(DrugNameResolver.key("xeralto").utf8), b = Array(DrugNameResolver.key("xarelto").utf8)
        #expect(DrugNameResolver.distance(a, b, limit: 8) == 4)  // two vowels: one edit
        let c = Array("plavit".utf8), d = Array("plavis".utf8)
        #expect(DrugNameResolver.distance(c, d, limit: 8) == 4)
        // A consonant wrong is not the resolver's to forgive: real words stay words.
        #expect(checker.mentions(in: "I take your advice every day").isEmpty)
        #expect(checker.mentions(in: "my college friend").isEmpty)
    }

    @Test func misspelledBrandsOfEachClassAreRead() {
        #expect(names("on Plavics since my stent") == ["clopidogrel"])
        #expect(names("my doc just started me on symbalta 60") == ["duloxetine"])
        #expect(names("i take xeralto for blood clots") == ["rivaroxaban"])
        #expect(names("I'm on orapp for Tourette's") == ["pimozide"])
        #expect(names("my kidney doctor told me to take klor kon too") == ["potassium"])
        #expect(names("I started Nexxium from the store") == ["esomeprazole"])
        #expect(names("aldacton 25 for heart failure") == ["spironolactone"])
    }

    @Test func aRealWordIsANameOnlyWhereAMedicineStandsAndOnlyBySound() {
        #expect(names("I take halcyon to sleep") == ["triazolam"])
        #expect(names("those halcyon days of summer").isEmpty)
        #expect(names("heart attack and my pcp").isEmpty)
    }
}
