import Foundation
import Testing
@testable import MedViewSafety

/// Misspelling tolerance of the medication names, measured rather than guessed (see
/// docs/SAFETY.md for the full figures with Debian's wamerican-insane word list).
@Suite struct MisspellingMeasureTests {
    @Test func misspelledBrandAndGenericNamesAreReadAsTheIntendedMedicine() async throws {
        // A word list when the machine has one (Debian: wamerican); the false-match half is
        // skipped without it.
        let path = "/usr/share/dict/words"
        let words = (try? String(contentsOfFile: path, encoding: .utf8))?.split(whereSeparator: \.isNewline).map(String.init) ?? []
        // Tens of thousands of look-ups: on a thread of its own, not the Swift concurrency pool
        // that the timing tests of other suites need.
        let report = try await onOwnThread { try SafetyMisspellingMeasure.run(dictionary: words) }
        print(report.text)
        #expect(report.names > 500)
        #expect(report.hitRate >= 0.97, "hit rate \(report.hitRate)")
        #expect(report.wrongRate <= 0.002, "wrong-medicine rate \(report.wrongRate)")
        // The single-edit rules at 90 % each; the harder ones (two vowels, the first letter by
        // sound, x as ks/cs, a split name) at the floors measured when they were added.
        let floors = ["vowels2": 0.6, "initial": 0.6, "cluster": 0.8, "split": 0.5]
        for rule in report.rules {
            #expect(Double(rule.hits) >= (floors[rule.rule] ?? 0.9) * Double(rule.variants), "\(rule.rule): \(rule.hits)/\(rule.variants)")
        }
        if !words.isEmpty {
            #expect(report.falseMatchRate <= 0.002, "\(report.falseMatches.prefix(20))")
            #expect(report.falseMatchInSentenceRate <= 0.002, "\(report.falseMatchesInSentence.prefix(20))")
        }
    }

    @Test func soundKeysAreTheSameAsWhenFoundationReplacedTheLetterGroups() {
        // The key as it was made with Foundation's `replacingOccurrences`.
        func reference(_ word: String) -> String {
            var s = word
            for (a, b) in [("tion", "shun"), ("ph", "f"), ("ck", "k"), ("qu", "kw"), ("ie", "i"), ("ei", "i"), ("y", "i")] {
                s = s.replacingOccurrences(of: a, with: b)
            }
            var chars = Array(s)
            if chars.first == "x" { chars[0] = "z" }
            for i in chars.indices where chars[i] == "c" {
                let next: Character? = i + 1 < chars.count ? chars[i + 1] : nil
                if next.map({ !"eiy".contains($0) }) ?? true { chars[i] = "k" }
            }
            var out: [Character] = []
            for c in chars {
                if let last = out.last, last == c { continue }
                out.append(c)
            }
            return String(out)
        }
        let dictionary = ((try? String(contentsOfFile: "/usr/share/dict/words", encoding: .utf8))?.split(whereSeparator: \.isNewline).map { $0.lowercased() } ?? [])
        let words = ["phenergan", "fenergan", "xanax", "zanax", "quetiapine", "seroquil", "promethazine", "yieield", "eieio", "tiontion",
                     "ciprofloxacin", "acetaminophen", "ckck", "ququ", "yy", "x", "", "cc", "naïve", "señora", "ñtion", "tioñ", "phé",
                     "e\u{301}ie", "cafe\u{301}", "x\u{301}anax", "c\u{327}a"] + dictionary.prefix(20_000)
        for word in words {
            #expect(SoundKey.key(word) == reference(word), "\(word)")
        }
    }

    @Test func soundAlikeSpellingsShareAKeyButRealWordsDoNotBecomeMedicines() {
        #expect(SoundKey.key("zanax") == SoundKey.key("xanax"))
        #expect(SoundKey.key("fenergan") == SoundKey.key("phenergan"))
        #expect(SoundKey.key("klonopin") == SoundKey.key("clonopin"))
        let checker = MedicationChecker.shared
        #expect(checker.mentions(in: "I take zanax at night").map(\.name) == ["alprazolam"])
        #expect(checker.mentions(in: "my adult son likes bananas").isEmpty)
    }

    @Test func editRulesMakeTheExpectedVariants() {
        let v = SafetyMisspellingMeasure.variants(of: "xanax")
        #expect(v.contains { $0 == ("drop", "xnax") })
        #expect(v.contains { $0 == ("swap", "xnaax") })
        #expect(v.contains { $0 == ("double", "xaanax") })
        #expect(v.contains { $0 == ("vowel", "xenax") })
        #expect(v.contains { $0 == ("sound", "zanax") })
        #expect(!v.contains { $0.1 == "xanax" })
    }
}
