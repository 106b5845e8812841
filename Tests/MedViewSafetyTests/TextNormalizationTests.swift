import Testing
@testable import MedViewSafety

@Suite struct TextNormalizationTests {
    let normalizer = TextNormalizer(
        language: try! SafetyData.language(),
        knownWords: ["help", "please", "bleeding", "breathe", "drooping", "so", "cant"]
    )

    func words(_ text: String) -> [String] { normalizer.tokens(text).filter(\.isWordLike).map(\.text) }

    @Test func lowercasesAndFoldsDiacriticsAndCurlyApostrophes() {
        #expect(words("Café NAÏVE can’t Don‘t") == ["cafe", "naive", "cant", "dont"])
    }

    @Test func collapsesTextingLetterRunsToAKnownWord() {
        #expect(words("heeelp pleeeease sooo") == ["help", "please", "so"])
        #expect(words("bleeeeding") == ["bleeding"])
        #expect(words("caaant breeeathe") == ["cant", "breathe"])
    }

    @Test func restoresDroppedFinalG() {
        #expect(words("face droopin") == ["face", "drooping"])
    }

    @Test func expandsTextingAbbreviations() {
        #expect(words("idk rn bc cnt") == ["i", "dont", "know", "right", "now", "because", "cant"])
        #expect(words("kms") == ["kill", "myself"])
        #expect(words("my roommate OD'd") == ["my", "roommate", "overdosed"])
        #expect(words("w/o my meds b/c") == ["without", "my", "meds", "because"])
    }

    @Test func marksSentenceBreaksAndKeepsDecimalNumbers() {
        let tokens = normalizer.tokens("Took 2.5 mg. Then 4,000 mg! Ok")
        #expect(tokens.map(\.kind) == [.word, .number, .word, .boundary, .word, .number, .word, .boundary, .word])
        #expect(tokens[1].value == 2.5)
        #expect(tokens[5].value == 4000)
    }

    @Test func splitsANumberFromItsUnit() {
        let tokens = normalizer.tokens("take 500mg")
        #expect(tokens.map(\.text) == ["take", "500", "mg"])
        #expect(tokens[1].value == 500)
    }

    @Test func keepsTitlePeriodsInsideTheSentence() {
        #expect(!normalizer.tokens("St. John's wort").contains { $0.kind == .boundary })
    }

    @Test func offsetsPointBackToTheSource() {
        let text = "Hi, can’t breathe"
        let scalars = Array(text.unicodeScalars)
        let t = normalizer.tokens(text).last!
        var s = String.UnicodeScalarView()
        s.append(contentsOf: scalars[t.start..<t.end])
        #expect(String(s) == "breathe")
    }

    @Test func laughterEmojiBecomeAWord() {
        #expect(words("i cant 😂") == ["i", "cant", "lol"])
    }
}

@Suite struct FuzzyIndexTests {
    let index = FuzzyIndex(terms: ["choking", "seizure", "unconscious", "pain", "clarithromycin", "claritin", "zyrtec", "zantac"], protected: ["cooking"])

    @Test func correctsMisspellingsWithinTheAllowedDistance() {
        #expect(index.correct("siezure") == "seizure")
        #expect(index.correct("unconcious") == "unconscious")
        #expect(index.correct("clarithromicin") == "clarithromycin")
        #expect(index.correct("claritn") == "claritin")
        #expect(index.correct("zyrtek") == "zyrtec")
    }

    @Test func shortWordsOnlyForgiveASwappedPair() {
        #expect(index.correct("pian") == "pain")
        #expect(index.correct("paim") == nil)
    }

    @Test func neverCorrectsAProtectedRealWordOrAnotherTerm() {
        #expect(index.correct("cooking") == nil)
        #expect(index.correct("claritin") == nil)  // a term itself: exact match, not a correction
    }

    @Test func refusesFirstLetterChangesAndAmbiguity() {
        #expect(index.correct("hoking") == nil)
        let tied = FuzzyIndex(terms: ["abcde", "abcdf"], protected: [])
        #expect(tied.correct("abcdx") == nil)
    }
}

@Suite struct PatternExpanderTests {
    @Test func expandsGroupsOptionalsAndMacros() throws {
        let phrases = try PatternExpander.expand("$cant (catch|get) (my|) breath", macros: ["cant": "(cant|unable to)"])
        #expect(phrases.count == 8)
        #expect(phrases.contains(["unable", "to", "get", "breath"]))
        #expect(phrases.contains(["cant", "catch", "my", "breath"]))
    }

    @Test func rejectsMalformedPatterns() {
        #expect(throws: SafetyDataError.self) { try PatternExpander.expand("(a|b", macros: [:]) }
        #expect(throws: SafetyDataError.self) { try PatternExpander.expand("$nope", macros: [:]) }
    }

    @Test func automatonFindsOverlappingPatterns() {
        let a = PhraseAutomaton(patterns: [[1, 2], [2, 3], [1, 2, 3]])
        var state: Int32 = 0
        var found: [Int32] = []
        for s: Int32 in [1, 2, 3] {
            state = a.step(state, s)
            found += a.matches(at: state)
        }
        #expect(Set(found) == [0, 1, 2])
    }
}
