import Testing
@testable import MedViewSafety

/// The one-pass string of scalars that the output guard releases and the emergency detector's
/// letter trigrams are made of: the same string as appending the scalars one by one.
@Suite struct ScalarStringTests {
    /// The string made the slow way, one scalar at a time.
    func appended(_ prefix: String, _ scalars: ArraySlice<Unicode.Scalar>) -> String {
        var text = prefix
        text.unicodeScalars.append(contentsOf: scalars)
        return text
    }

    @Test func givesTheSameStringAsAppendingEachScalarAcrossEveryUTF8Width() {
        // Each width's first and last scalar, and text a patient or a model writes.
        let edges: [UInt32] = [0x00, 0x41, 0x7F, 0x80, 0xE9, 0x7FF, 0x800, 0x2014, 0xD7FF, 0xE000, 0xFFFD, 0xFFFF, 0x10000, 0x1F4A7, 0x10FFFF]
        let samples = ["", "a", "Take 500 mg twice a day.", "naïve café", "Ibuprofen — 200 mg", "💧 hydrate", "e\u{301}", "한국어 약", "\u{0}\u{1}"]
        for text in samples {
            let scalars = Array(text.unicodeScalars)
            for prefix in ["", "c:", "w:ü"] {
                #expect(String(prefix: prefix, scalars: scalars[...]) == appended(prefix, scalars[...]), "\(text)")
                #expect(String(prefix: prefix, scalars: scalars[...]).utf8.elementsEqual(appended(prefix, scalars[...]).utf8), "\(text)")
            }
        }
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            let scalars = (0..<Int.random(in: 0...40, using: &rng)).map { _ in
                edges.randomElement(using: &rng).flatMap(Unicode.Scalar.init)!
            }
            let start = Int.random(in: 0...scalars.count, using: &rng)
            let end = Int.random(in: start...scalars.count, using: &rng)
            let slice = scalars[start..<end]
            #expect(String(scalars: slice).utf8.elementsEqual(appended("", slice).utf8), "\(slice.map(\.value))")
        }
    }
}
