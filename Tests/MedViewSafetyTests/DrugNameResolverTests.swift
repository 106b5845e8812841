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

    /// The resolver's letter test answers as `Character.isLetter` does, on ASCII words (its fast
    /// path) and on any other (accents, other scripts, digits, apostrophes, emoji, combining marks).
    @Test func itsLetterTestIsCharacterIsLetter() {
        let words = [
            "plavics", "Xarelto", "klor", "kon", "a", "", "abc1", "it's", "co-op", "café", "cafe\u{301}", "naïve",
            "señor", "москва", "東京", "😀", "a😀", "l\u{200D}z", "ab cd", "x\n", "ǅemal", "ﬁne", "ß", "١٢٣", "ⅸ",
        ]
        for word in words {
            #expect(DrugNameResolver.isLetters(word) == word.allSatisfy(\.isLetter), "\(word)")
        }
        for byte in UInt8.min...0x7F {
            let c = Character(Unicode.Scalar(byte))
            #expect(DrugNameResolver.isASCIILetter(byte) == (c.isLetter && c.isASCII), "\(byte)")
        }
    }
}
