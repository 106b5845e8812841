/// The language rules behind normalization, loaded from `Data/language.json`.
///
/// Everything here is about how patients write (texting abbreviations, contractions, common
/// misspellings), not about medicine; the medical vocabularies live in the other data files.
struct LanguageData: Codable, Sendable {
    /// Where the lists came from and how they were checked.
    var about: String
    /// Single tokens replaced by one or more words: `"idk": "i dont know"`, `"kms": "kill myself"`.
    var abbreviations: [String: String]
    /// Forms whose apostrophe matters, checked before apostrophes are dropped: `"od'd": "overdosed"`.
    var apostropheForms: [String: String]
    /// Words skipped when phrase patterns are matched, so "my chest really hurts" matches
    /// "chest hurts". They stay in the token list for the context rules.
    var fillers: [String]
    /// Real English words near a key term, which must never be corrected into it by the
    /// misspelling index ("cooking" is not "choking", "drying" is not "dying").
    var protectedWords: [String]
    /// Named alternatives usable in every pattern file as `$name`:
    /// `"cant": "(cant|can not|unable to)"`.
    var macros: [String: String]
    /// Words that refer to the writer, to someone else, or to people in general.
    var people: PeopleData
    /// Animal words (pets, farm animals): a message about an animal with no person in it gets
    /// no emergency alert, since 911 guidance is for people (the product points to a vet).
    var animals: [String]?
}
