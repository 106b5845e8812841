import MedViewProtocol
import Testing

/// `trimmingScalars(where:)` trims bearer tokens, model stream markers and triage replies: only the
/// ends go, whatever the text between, on strings and on substrings alike.
@Suite struct ScalarTrimmingTests {
    @Test(arguments: [
        ("  abc  ", "abc"),
        ("\t\u{3000}token\u{00A0}\t", "token"),
        ("no-trim", "no-trim"),
        ("   ", ""),
        ("", ""),
        (" a b\tc ", "a b\tc"),
        ("\u{2003}é🙂👩‍⚕️\u{2003}", "é🙂👩‍⚕️"),
        (" e\u{0301} ", "e\u{0301}"),
        ("\u{3000}日本語\u{3000}", "日本語"),
    ])
    func trimsOnlyTheEnds(input: String, expected: String) {
        #expect(input.trimmingScalars(where: \.isSpaceOrTab) == expected)
        // The same through a substring that starts and ends inside a larger text.
        let framed = "[" + input + "]"
        let inner = framed.dropFirst().dropLast()
        #expect(inner.trimmingScalars(where: \.isSpaceOrTab) == expected)
    }

    @Test func aCombiningMarkAtTheEdgeStaysWithItsLetterWhenNotTrimmed() {
        // The predicate sees scalars: a trimmed scalar after a kept one is dropped, a kept one stays.
        let text = "x\u{0301}  "
        #expect(text.trimmingScalars(where: \.isSpaceOrTab).unicodeScalars.map(\.value) == [0x78, 0x301])
        #expect("..ab..".trimmingScalars(where: { $0 == "." }) == "ab")
        #expect("....".trimmingScalars(where: { $0 == "." }) == "")
    }

    @Test func aLongTokenKeepsEveryByte() {
        let token = String(repeating: "eyJhbGciOiJIUzI1NiJ9.", count: 60)
        #expect(("Bearer-ish \t" + token + " \t").trimmingScalars(where: \.isSpaceOrTab) == "Bearer-ish \t" + token)
    }
}
