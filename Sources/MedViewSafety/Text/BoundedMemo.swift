import Synchronization

/// Answers already worked out, by word, shared by copies of whatever holds it (the fuzzy index's
/// corrections, the drug-name resolver's pronunciation keys): patients' messages reuse the same
/// everyday words. Emptied when it holds ``limit`` words, so it stays bounded.
final class BoundedMemo<Value: Sendable>: Sendable {
    static var limit: Int { 50_000 }
    private let answers = Mutex<[String: Value]>([:])

    /// The remembered answer for `word`, else `work(word)`, remembered.
    func answer(_ word: String, _ work: (String) -> Value) -> Value {
        if let known = answers.withLock({ $0[word] }) { return known }
        let answer = work(word)
        answers.withLock {
            if $0.count >= Self.limit { $0.removeAll(keepingCapacity: true) }
            $0[word] = answer
        }
        return answer
    }
}
