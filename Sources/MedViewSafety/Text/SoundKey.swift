/// A spelling-independent key for a word, for names patients write by sound ("zanax",
/// "seroquil", "fenergan"): sound-alike letter groups are folded (ph→f, x at the start→z, c before
/// a hard vowel or a consonant→k, ck→k, qu→kw, y→i, ie/ei→i, tion→shun) and doubled letters are
/// collapsed. Vowels stay: dropping them made real words ("adult", "banana") collide with
/// drug names; a wrong vowel is the edit-distance index's job.
///
/// The medication name matcher looks a word up by its key only after an exact and an
/// edit-distance match have failed, and only when exactly one name has that key (and the word
/// is not a protected real word); the misspelling measurement reports what it adds.
enum SoundKey {
    /// The key of a lowercase word.
    static func key(_ word: String) -> String {
        var s = word
        for (a, b) in [("tion", "shun"), ("ph", "f"), ("ck", "k"), ("qu", "kw"), ("ie", "i"), ("ei", "i"), ("y", "i")] {
            s = s.replacingOccurrences(of: a, with: b)
        }
        var chars = Array(s)
        if chars.first == "x" { chars[0] = "z" }
        // c before a, o, u or a consonant sounds like k.
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
}
