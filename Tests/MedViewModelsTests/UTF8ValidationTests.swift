import MedViewProtocol
import Testing

@Suite struct UTF8ValidationTests {
    @Test("validUTF8 agrees with String(validating:) on valid and invalid bytes", arguments: [
        Array("plain ascii".utf8),
        Array("Ibuprofen 200 mg — ok ✓ 👩🏽‍⚕️ café".utf8),
        Array("already has \u{FFFD} in it".utf8),
        [],
        [0x80],                         // a lone continuation byte
        [0xE2, 0x82],                   // a truncated three-byte sequence
        [0xC0, 0xAF],                   // an overlong encoding of "/"
        [0xED, 0xA0, 0x80],             // a UTF-16 surrogate
        [0x61, 0xF4, 0x90, 0x80, 0x80], // beyond U+10FFFF
    ] as [[UInt8]])
    func agreesWithTheStandardLibrary(bytes: [UInt8]) {
        let fast = bytes.withUnsafeBufferPointer { String(validUTF8: $0) }
        #expect(fast == String(validating: bytes, as: UTF8.self))
    }
}
