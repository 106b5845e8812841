@testable import MedViewCore
import Testing

/// Offsets (in Unicode scalars) where grapheme clusters of `text` begin, plus the end.
func graphemeBoundaries(_ text: String) -> Set<Int> {
    var result: Set<Int> = [0]
    var offset = 0
    for character in text {
        offset += character.unicodeScalars.count
        result.insert(offset)
    }
    return result
}

/// Splits `text` into deltas of `size` Unicode scalars, cutting grapheme clusters the way models do.
func scalarDeltas(_ text: String, size: Int) -> [String] {
    let scalars = Array(text.unicodeScalars)
    return stride(from: 0, to: scalars.count, by: size).map { start in
        var view = String.UnicodeScalarView()
        view.append(contentsOf: scalars[start..<min(start + size, scalars.count)])
        return String(view)
    }
}

@Suite struct StreamProcessorTests {
    let t0 = ContinuousClock.now

    /// Runs every delta through a processor (no flush deadlines) and returns the chunks.
    func chunks(_ deltas: [String], max: Int = 256) -> [String] {
        var p = StreamProcessor(configuration: .init(maxCharacters: max, maxDelay: .seconds(3600)))
        var out: [String] = []
        for d in deltas { out += p.append(d, now: t0) }
        out += p.finish()
        return out
    }

    /// Asserts the chunks are non-empty, within the limit, rebuild the text, and only end on grapheme boundaries.
    func expectWellFormed(_ chunks: [String], text: String, max: Int, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(chunks.joined() == text, sourceLocation: sourceLocation)
        let boundaries = graphemeBoundaries(text)
        var offset = 0
        for chunk in chunks {
            #expect(!chunk.isEmpty, sourceLocation: sourceLocation)
            #expect(chunk.count <= max, "chunk of \(chunk.count) characters", sourceLocation: sourceLocation)
            offset += chunk.unicodeScalars.count
            #expect(boundaries.contains(offset), "a chunk ends inside a grapheme cluster at scalar \(offset)", sourceLocation: sourceLocation)
        }
    }

    @Test("chunks never exceed the limit and rebuild the text exactly")
    func sizes() {
        let text = String(repeating: "The quick brown fox jumps over the lazy dog. ", count: 40)
        for deltaSize in [1, 3, 7, 50, 1000] {
            let out = chunks(scalarDeltas(text, size: deltaSize))
            expectWellFormed(out, text: text, max: 256)
            #expect(out.count >= text.count / 256)
        }
    }

    @Test("emoji, CJK and combining marks split across deltas are never split across chunks", arguments: [1, 2, 3, 5])
    func graphemes(deltaSize: Int) {
        let pieces = ["👩‍👩‍👧‍👦", "🇺🇸", "👍🏽", "é", "ñ", "한국어", "漢字かな交じり文", "z̸̢͓", "🧑🏿‍⚕️", "e\u{301}\u{302}"]
        var text = ""
        for i in 0..<300 { text += pieces[i % pieces.count] + (i % 7 == 0 ? " " : "") }
        for max in [8, 16, 256] {
            expectWellFormed(chunks(scalarDeltas(text, size: deltaSize), max: max), text: text, max: max)
        }
    }

    @Test("CJK text without spaces is cut at full-width sentence ends or the limit")
    func cjk() {
        let sentence = "患者さんは毎日薬を飲んでいます。"
        let text = String(repeating: sentence, count: 60)
        let out = chunks(scalarDeltas(text, size: 4))
        expectWellFormed(out, text: text, max: 256)
        #expect(out.dropLast().allSatisfy { $0.hasSuffix("。") })
    }

    @Test("full chunks prefer sentence ends, then word ends")
    func boundaries() {
        let text = String(repeating: "Drink water often. Rest when tired! ", count: 30)
        let out = chunks(scalarDeltas(text, size: 5))
        expectWellFormed(out, text: text, max: 256)
        for chunk in out.dropLast() {
            #expect(chunk.hasSuffix(". ") || chunk.hasSuffix("! "), "chunk ends mid-sentence: …\(chunk.suffix(12))")
        }
        let words = String(repeating: "alpha beta gamma delta ", count: 50)
        for chunk in chunks(scalarDeltas(words, size: 3)).dropLast() {
            #expect(chunk.hasSuffix(" "))
        }
    }

    @Test("pending text is flushed up to a word end once the maximum delay has passed")
    func flushDelay() {
        var p = StreamProcessor(configuration: .init(maxCharacters: 256, maxDelay: .milliseconds(50)))
        #expect(p.append("Hello wor", now: t0).isEmpty)
        #expect(p.flushIfDue(now: t0.advanced(by: .milliseconds(49))).isEmpty)
        #expect(p.flushDeadline == t0.advanced(by: .milliseconds(50)))
        #expect(p.flushIfDue(now: t0.advanced(by: .milliseconds(50))) == ["Hello "])
        #expect(p.append("ld", now: t0.advanced(by: .milliseconds(60))).isEmpty)
        #expect(p.finish() == ["world"])
        #expect(!p.hasPending)
    }

    @Test("a word still arriving is not cut at the first deadline, only once it is long or old")
    func noMidWordFlush() {
        var p = StreamProcessor(configuration: .init(maxCharacters: 256, maxDelay: .milliseconds(50)))
        #expect(p.append("prescri", now: t0).isEmpty)
        #expect(p.flushIfDue(now: t0.advanced(by: .milliseconds(50))).isEmpty)
        #expect(p.flushDeadline == t0.advanced(by: .milliseconds(200)))
        #expect(p.append("bed ", now: t0.advanced(by: .milliseconds(80))).isEmpty)
        // The trailing space is the last character, so it waits (a combining mark could follow it).
        #expect(p.flushIfDue(now: t0.advanced(by: .milliseconds(200))) == ["prescribed"])
        // CJK characters are break opportunities of their own.
        #expect(p.append("薬を飲", now: t0.advanced(by: .milliseconds(300))).isEmpty)
        #expect(p.flushIfDue(now: t0.advanced(by: .milliseconds(350))) == [" 薬を"])
        // A very long token is cut once it passes the long-word length.
        #expect(p.finish() == ["飲"])
        _ = p.append(String(repeating: "x", count: 30), now: t0)
        #expect(p.flushIfDue(now: t0.advanced(by: .milliseconds(50))) == [String(repeating: "x", count: 29)])
    }

    @Test("the first whole words can be taken at once; a lone partial word cannot")
    func wholeWords() {
        var p = StreamProcessor()
        _ = p.append("Hel", now: t0)
        #expect(p.takeWholeWords(now: t0).isEmpty)
        _ = p.append("lo there", now: t0)
        #expect(p.takeWholeWords(now: t0) == ["Hello "])
        #expect(p.finish() == ["there"])
    }

    @Test("a flush holds back the last character, which a later delta could still extend")
    func flushHoldsLastCharacter() {
        var p = StreamProcessor(configuration: .init(maxCharacters: 256, maxDelay: .zero))
        #expect(p.append("abcde", now: t0) == [])
        #expect(p.flushIfDue(now: t0) == ["abcd"])
        // A combining acute accent arrives: it must join the held-back "e".
        _ = p.append("\u{301}", now: t0)
        #expect(p.finish() == ["e\u{301}"])
    }
}

/// Plain ASCII text is cut on bytes (a fast path); the cuts must be the ones the character path makes.
@Suite struct StreamProcessorByteCutTests {
    @Test func asciiTextIsCutWhereTheCharacterPathCutsIt() {
        var generator = SystemRandomNumberGenerator()
        let pieces = ["word", "a", "Take", "ibuprofen", " ", " ", "  ", ". ", "! ", "? ", ": ", "; ", ".", "\n", "\n\n", "\t", "\u{0B}", "\u{0C}", ",", "x" + String(repeating: "y", count: 40)]
        for round in 0..<400 {
            var text = ""
            while text.utf8.count < Int.random(in: 1...1400, using: &generator) {
                text += pieces.randomElement(using: &generator)!
            }
            let limit = [8, 16, 64, 256].randomElement(using: &generator)!
            let configuration = StreamProcessor.Configuration(maxCharacters: limit)
            var bytes = StreamProcessor(configuration: configuration)
            var characters = StreamProcessor(configuration: configuration)
            characters.charactersOnly = true
            let now = ContinuousClock.now
            var fromBytes: [String] = []
            var fromCharacters: [String] = []
            var rest = Substring(text)
            while !rest.isEmpty {
                let delta = String(rest.prefix(Int.random(in: 1...300, using: &generator)))
                rest = rest.dropFirst(delta.count)
                fromBytes += bytes.append(delta, now: now)
                fromCharacters += characters.append(delta, now: now)
            }
            fromBytes += bytes.finish()
            fromCharacters += characters.finish()
            #expect(fromBytes == fromCharacters, "round \(round), limit \(limit)")
            #expect(fromBytes.joined() == text)
            #expect(fromBytes.allSatisfy { !$0.isEmpty && $0.count <= limit })
        }
    }

    @Test func textWithACarriageReturnOrNonASCIIIsCutOnCharacters() {
        // CR LF is one character: a byte cut could split it; such text takes the character path.
        #expect(!StreamProcessor.isSimpleASCII("line\r\nnext"))
        #expect(!StreamProcessor.isSimpleASCII("café"))
        #expect(StreamProcessor.isSimpleASCII("plain text.\n\tmore"))
        var processor = StreamProcessor(configuration: .init(maxCharacters: 8))
        let chunks = processor.append("abc\r\ndefgh\r\nij", now: .now) + processor.finish()
        #expect(chunks.joined() == "abc\r\ndefgh\r\nij")
        #expect(chunks.allSatisfy { $0.count <= 8 })
    }
}
