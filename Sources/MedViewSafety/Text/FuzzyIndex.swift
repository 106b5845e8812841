/// Misspelling tolerance for a fixed vocabulary of key terms, SymSpell style.
///
/// Built once: every term maps each of its deletion variants (the term with up to `d` letters
/// removed, `d` = the distance allowed for its length) to itself. A query generates its own
/// deletion variants, looks them up, and verifies each candidate with the optimal string
/// alignment distance (Levenshtein plus adjacent transpositions).
///
/// Care for near-collisions:
/// - a query that is itself a vocabulary term or a protected real word is never corrected
///   ("cooking" never becomes "choking"; "claritin" never becomes "clarithromycin");
/// - the first letter must match (or the first two be swapped): real misspellings keep it;
/// - a query equally close to two terms is ambiguous and is not corrected.
///
/// Allowed distance by term length: 0 up to 4 letters (only an adjacent swap of letters), 1
/// for 5–8 letters, 2 from 9 letters.
///
/// Answers are remembered (a bounded memo shared by copies of the index): patients' messages
/// reuse the same everyday words, and a word that is no term costs its deletion variants every
/// time it is looked at.
struct FuzzyIndex: Sendable {
    private let terms: [String]
    private let termSet: Set<String>
    private let protected: Set<String>
    private let variants: [String: [Int32]]
    /// Corrections already worked out, by query word.
    private let memo = BoundedMemo<String?>()

    init(terms: some Sequence<String>, protected: Set<String>) {
        let sorted = Array(Set(terms)).sorted()
        var variants: [String: [Int32]] = [:]
        for (id, term) in sorted.enumerated() {
            let d = max(1, Self.maxDistance(forLength: term.count))
            for v in Self.deletions(of: term, upTo: d) {
                variants[v, default: []].append(Int32(id))
            }
        }
        self.terms = sorted
        self.termSet = Set(sorted)
        self.protected = protected
        self.variants = variants
    }

    /// Largest edit distance tolerated for a term of `length` letters.
    static func maxDistance(forLength length: Int) -> Int {
        length >= 9 ? 2 : (length >= 5 ? 1 : 0)
    }

    /// Whether `word` is one of the vocabulary's terms.
    func contains(_ word: String) -> Bool { termSet.contains(word) }

    /// The vocabulary term `word` is a misspelling of, or `nil` when it is none, is itself a term
    /// or a protected word, or is equally close to two terms.
    func correct(_ word: String) -> String? {
        guard !termSet.contains(word), !protected.contains(word) else { return nil }
        return memo.answer(word) { correction(of: $0) }
    }

    private func correction(of word: String) -> String? {
        let chars = Array(word)
        guard chars.count >= 4, chars.allSatisfy(\.isLetter) else { return nil }
        var best: (term: Int32, distance: Int)?
        var tie = false
        var seen: Set<Int32> = []
        for v in Self.deletions(of: word, upTo: 2) {
            guard let ids = variants[v] else { continue }
            for id in ids where seen.insert(id).inserted {
                let term = Array(terms[Int(id)])
                guard Self.sameStart(chars, term) else { continue }
                let allowed = Self.maxDistance(forLength: term.count)
                let d = Self.osaDistance(chars, term, limit: max(allowed, 1))
                let ok = d <= allowed || (allowed == 0 && d == 1 && Self.isAdjacentSwap(chars, term))
                guard ok else { continue }
                if let b = best {
                    if d < b.distance { best = (id, d); tie = false } else if d == b.distance { tie = true }
                } else {
                    best = (id, d)
                }
            }
        }
        guard let b = best, !tie else { return nil }
        return terms[Int(b.term)]
    }

    private static func sameStart(_ a: [Character], _ b: [Character]) -> Bool {
        guard let fa = a.first, let fb = b.first else { return false }
        if fa == fb { return true }
        return a.count > 1 && b.count > 1 && a[0] == b[1] && a[1] == b[0]
    }

    private static func isAdjacentSwap(_ a: [Character], _ b: [Character]) -> Bool {
        guard a.count == b.count else { return false }
        let diff = a.indices.filter { a[$0] != b[$0] }
        return diff.count == 2 && diff[1] == diff[0] + 1 && a[diff[0]] == b[diff[1]] && a[diff[1]] == b[diff[0]]
    }

    /// The word with up to `d` letters deleted, the word itself included.
    static func deletions(of word: String, upTo d: Int) -> Set<String> {
        var result: Set<String> = [word]
        var frontier: Set<String> = [word]
        for _ in 0..<d {
            var next: Set<String> = []
            for w in frontier where w.count > 1 {
                let chars = Array(w)
                for i in chars.indices {
                    var c = chars
                    c.remove(at: i)
                    next.insert(String(c))
                }
            }
            result.formUnion(next)
            frontier = next
        }
        return result
    }

    /// Optimal string alignment distance, or `limit + 1` once it is certain to exceed `limit`.
    static func osaDistance(_ a: [Character], _ b: [Character], limit: Int) -> Int {
        if abs(a.count - b.count) > limit { return limit + 1 }
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var prev2 = [Int](repeating: 0, count: b.count + 1)
        var prev = Array(0...b.count)
        var cur = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            cur[0] = i
            var rowMin = cur[0]
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                var v = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] {
                    v = min(v, prev2[j - 2] + 1)
                }
                cur[j] = v
                rowMin = min(rowMin, v)
            }
            if rowMin > limit { return limit + 1 }
            (prev2, prev, cur) = (prev, cur, prev2)
        }
        return prev[b.count]
    }
}
