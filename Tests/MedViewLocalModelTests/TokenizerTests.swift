import Foundation
import Testing
@testable import MedViewLocalModel

@Suite struct TokenizerTests {
    /// A tiny byte-level BPE: every printable byte-alphabet character, some merges, two control tokens.
    static func tiny() throws -> Tokenizer {
        var tokens = ["<|end|>", "<|im_start|>"]
        var types: [Int32] = [3, 3]
        for s in Tokenizer.byteToScalar {
            tokens.append(String(s))
            types.append(1)
        }
        let merges = ["h e", "l l", "he ll", "hell o", "Ġ w", "Ġw o"]
        tokens += ["he", "ll", "hell", "hello", "Ġw", "Ġwo"]
        types += Array(repeating: 1, count: 6)
        return try Tokenizer(tokens: tokens, tokenTypes: types, merges: merges, bosId: nil, eosId: 0, addBos: false, splitDigits: true)
    }

    @Test func mergesFollowRankOrder() throws {
        let t = try Self.tiny()
        let ids = t.encode("hello wow")
        #expect(ids.map { t.tokens[Int($0)] } == ["hello", "Ġwo", "w"])
        #expect(t.decode(ids) == "hello wow")
    }

    @Test func controlTokensAreParsedOnlyWhenAsked() throws {
        let t = try Self.tiny()
        #expect(t.encode("<|im_start|>hello", parseSpecial: true).first == 1)
        let plain = t.encode("<|im_start|>hello")
        #expect(!plain.contains(1))
        #expect(t.decode(plain) == "<|im_start|>hello")
        #expect(t.endOfGenerationIds.contains(0))
        #expect(t.bytes(of: 1).isEmpty)
    }

    @Test func preTokenizerSplitsLikeGPT2WithSingleDigits() {
        func pieces(_ s: String) -> [String] {
            PreTokenizer.split(Array(s.unicodeScalars), splitDigits: true).map { String(String.UnicodeScalarView($0)) }
        }
        #expect(pieces("Hello world's 123!") == ["Hello", " world", "'s", " ", "1", "2", "3", "!"])
        #expect(pieces("a  b") == ["a", " ", " b"])
        #expect(pieces("end.   ") == ["end", ".", "   "])
        #expect(pieces("x\n\ny") == ["x", "\n", "\n", "y"])
        #expect(pieces("café, naïve") == ["café", ",", " naïve"])
        #expect(pieces("I'M") == ["I", "'", "M"])
        #expect(pieces("日本語 text") == ["日本語", " text"])
    }

    @Test func bytesOutsideTheVocabularyRoundTripThroughTheByteAlphabet() throws {
        let t = try Self.tiny()
        for text in ["😀 ünïcödé", "\t\r\n", "a\u{0}b", "  spaced  out  "] {
            #expect(t.decode(t.encode(text)) == text)
        }
    }

    struct TokenizerFixture: Decodable {
        struct Case: Decodable {
            var text: String
            var ids: [Int32]
            var special_ids: [Int32]
        }
        var cases: [Case]
    }

    @Test(.enabled(if: RealModel.available, "needs the model file (medview model fetch)"))
    func tokenIdsMatchLlamaCppOnTheCorpus() throws {
        let tokenizer = try RealModel.load().tokenizer
        let fixture = try fixture("tokenizer", as: TokenizerFixture.self)
        #expect(fixture.cases.count >= 200)
        var mismatches = 0
        for c in fixture.cases {
            let ids = tokenizer.encode(c.text)
            let special = tokenizer.encode(c.text, parseSpecial: true)
            if ids != c.ids || special != c.special_ids { mismatches += 1 }
            #expect(ids == c.ids, "text \(c.text.debugDescription)")
            #expect(special == c.special_ids, "text (special) \(c.text.debugDescription)")
            #expect(tokenizer.decode(ids) == c.text, "round trip \(c.text.debugDescription)")
        }
        print("tokenizer: \(fixture.cases.count - mismatches)/\(fixture.cases.count) strings tokenize exactly like llama.cpp")
    }
}

@Suite struct TextAssemblerTests {
    @Test func neverEmitsHalfACharacter() {
        var a = TextAssembler(stopStrings: [])
        let bytes = Array("é😀".utf8)  // 2 + 4 bytes
        var out: [String] = []
        for b in bytes { out.append(a.append([b])) }
        #expect(out == ["", "é", "", "", "", "😀"])
        #expect(a.finish() == "")
    }

    @Test func holdsBackAPossibleStopStringAndCutsAtIt() {
        var a = TextAssembler(stopStrings: ["<|im_end|>"])
        #expect(a.append(Array("Hello <|im".utf8)) == "Hello ")
        #expect(a.append(Array("_end|> tail".utf8)) == "")
        #expect(a.stopped)
        #expect(a.finish() == "")

        var b = TextAssembler(stopStrings: ["<|im_end|>"])
        #expect(b.append(Array("a <".utf8)) == "a ")
        #expect(b.append(Array("b".utf8)) == "<b")
        #expect(b.append(Array(" <|i".utf8)) == " ")
        #expect(b.finish() == "<|i")
    }

    @Test func anIncompleteCharacterAtTheEndBecomesAReplacementCharacter() {
        var a = TextAssembler(stopStrings: [])
        #expect(a.append([0x61, 0xE2, 0x82]) == "a")
        #expect(a.finish() == "\u{FFFD}")
    }
}

@Suite struct SamplerTests {
    let logits: [Float] = [0.1, 2.0, 1.9, -1, 0.5]

    @Test func greedyPicksTheLargest() {
        var s = Sampler(.greedy)
        #expect(s.sample(logits, history: []) == 1)
        #expect(Sampler.argmax([3, 3, 1]) == 0)
    }

    @Test func theSameSeedGivesTheSameTokens() {
        let p = SamplingParameters(temperature: 1.5, topK: 0, topP: 1, repetitionPenalty: 1, seed: 42)
        var a = Sampler(p), b = Sampler(p)
        let x = (0..<50).map { _ in a.sample(logits, history: []) }
        let y = (0..<50).map { _ in b.sample(logits, history: []) }
        #expect(x == y)
        #expect(Set(x).count > 1, "temperature 1.5 should not always pick one token")
    }

    @Test func topKAndTopPNarrowTheChoice() {
        var k = Sampler(SamplingParameters(temperature: 5, topK: 2, topP: 1, repetitionPenalty: 1, seed: 7))
        #expect(Set((0..<100).map { _ in k.sample(logits, history: []) }).isSubset(of: [1, 2]))
        var p = Sampler(SamplingParameters(temperature: 1, topK: 0, topP: 0.01, repetitionPenalty: 1, seed: 7))
        #expect(Set((0..<50).map { _ in p.sample(logits, history: []) }) == [1])
    }

    @Test func mostLikelySelectsTheTopLogitsInOrderWithTiesByLowerId() {
        var generator = SplitMix64(seed: 3)
        let values: [Float] = (0..<5_000).map { _ in Float(generator.next() % 200) / 10 }  // many ties
        let expected = values.indices.map { (id: Int32($0), logit: values[$0]) }
            .sorted { $0.logit > $1.logit || ($0.logit == $1.logit && $0.id < $1.id) }
        for k in [1, 2, 40, 4_999, 5_000, 9_000] {
            let top = Sampler.mostLikely(values, count: k)
            #expect(top.map(\.id) == expected.prefix(k).map(\.id), "k = \(k)")
        }
    }

    @Test func repetitionPenaltyDemotesRecentTokens() {
        var s = Sampler(SamplingParameters(temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1.2, seed: 1))
        #expect(s.sample(logits, history: [1]) == 2)
        #expect(s.sample(logits, history: [3]) == 1)
    }
}
