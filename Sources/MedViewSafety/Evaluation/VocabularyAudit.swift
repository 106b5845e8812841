/// Finds near-collisions between real words and the key terms the misspelling index corrects
/// to, so they can be added to `protectedWords` in `language.json`.
///
/// Run it against a word list (`medview safety vocab-audit --dictionary FILE`): every listed
/// word that is not a key term but would be corrected into one ("cooking" → "choking") is
/// reported. The project keeps the reviewed result in the data file, so the word list is
/// needed only when the vocabularies change.
public enum SafetyVocabularyAudit {
    /// One real word the index would wrongly correct.
    public struct Collision: Sendable, Equatable {
        /// The real word.
        public var word: String
        /// The key term it would become.
        public var term: String
        /// `emergency`, `findings`, `medication` or `medication-sound` (read by the
        /// ``DrugNameResolver``: candidates for `realWords` in `drugs.json`).
        public var vocabulary: String
    }

    /// Collisions for the words of `dictionary` (one word per element; words with capitals,
    /// apostrophes or non-letters are skipped as names and forms the normalizer never sees).
    public static func collisions(dictionary: [String]) throws(SafetyDataError) -> [Collision] {
        let language = try SafetyData.language()
        let protected = Set(language.protectedWords)
        let vocabularies: [(String, Set<String>)] = [
            ("emergency", try EmergencyDetector().signalVocabulary),
            ("findings", try EmergencyDetector().findingsVocabulary),
            ("medication", try MedicationChecker().nameVocabulary),
        ]
        var out: [Collision] = []
        for (name, vocabulary) in vocabularies {
            let terms = vocabulary.filter { $0.count >= 4 && $0.allSatisfy(\.isLetter) }
            let index = FuzzyIndex(terms: terms, protected: protected)
            for word in dictionary where word.count >= 4 && word.allSatisfy({ $0.isLowercase && $0.isLetter && $0.isASCII }) {
                guard !vocabulary.contains(word), let term = index.correct(word) else { continue }
                out.append(Collision(word: word, term: term, vocabulary: name))
            }
        }
        // The medication names read by sound or weighted distance (``DrugNameResolver``): a
        // real word read as a medicine where a medicine stands ("I take … every day") belongs
        // in `realWords` of `drugs.json`.
        let checker = try MedicationChecker()
        let names = checker.nameVocabulary.union(checker.nameTable.keys)
        for word in dictionary where word.count >= 4 && word.allSatisfy({ $0.isLowercase && $0.isLetter && $0.isASCII }) && !names.contains(word) {
            if let m = checker.mentions(in: "I take \(word) every day").first {
                out.append(Collision(word: word, term: m.name, vocabulary: "medication-sound"))
            }
        }
        return out
    }
}
