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
        var chars = Array(word)
        // Each fold in turn over the whole word, left to right, as `replacingOccurrences` did
        // (characters compared as Swift compares them, so "n" does not match "ñ"), without
        // Foundation: on Linux each of its replacements went through NSString.
        for (a, b) in folds {
            chars = replacing(a, with: b, in: chars)
        }
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

    /// The sound-alike letter groups, folded in this order.
    private static let folds: [([Character], [Character])] = [
        ("tion", "shun"), ("ph", "f"), ("ck", "k"), ("qu", "kw"), ("ie", "i"), ("ei", "i"), ("y", "i"),
    ].map { (Array($0.0), Array($0.1)) }

    /// `chars` with every occurrence of `target` replaced by `replacement`, left to right, without overlaps.
    private static func replacing(_ target: [Character], with replacement: [Character], in chars: [Character]) -> [Character] {
        guard chars.count >= target.count, let head = target.first, chars.contains(head) else { return chars }
        var out: [Character] = []
        out.reserveCapacity(chars.count + 2)
        var i = 0
        while i < chars.count {
            if chars[i] == head, i + target.count <= chars.count, chars[i..<(i + target.count)].elementsEqual(target) {
                out.append(contentsOf: replacement)
                i += target.count
            } else {
                out.append(chars[i])
                i += 1
            }
        }
        return out
    }
}
