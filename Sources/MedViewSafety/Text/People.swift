/// Who a word refers to: the writer, someone else, or people in general.
enum PersonReference: Sendable, Equatable {
    /// The patient writing ("i", "my", "myself").
    case firstPerson
    /// A specific other person ("my dad", "she", "herself").
    case other(Gender)
    /// Anyone ("someone", "people", "you" in general questions).
    case generic
}

/// Grammatical gender of a reference, for bystander wording ("call 911 for him").
public enum Gender: String, Sendable, Equatable, Codable {
    case male, female, neutral

    /// Object pronoun: him, her, them.
    public var object: String { switch self { case .male: "him"; case .female: "her"; case .neutral: "them" } }
    /// Possessive: his, her, their.
    public var possessive: String { switch self { case .male: "his"; case .female: "her"; case .neutral: "their" } }
    /// Reflexive: himself, herself, themself.
    public var reflexive: String { switch self { case .male: "himself"; case .female: "herself"; case .neutral: "themself" } }
}

/// The person words of `language.json`.
struct PeopleData: Codable, Sendable {
    var male: [String]
    var female: [String]
    var neutral: [String]
    var firstPerson: [String]
    var generic: [String]
}

/// Looks up person words, tolerating the plural/possessive "s" of kin nouns ("dads face").
struct PersonLexicon: Sendable {
    private let table: [String: PersonReference]

    init(_ data: PeopleData) {
        var t: [String: PersonReference] = [:]
        for w in data.neutral { t[w] = .other(.neutral) }
        for w in data.male { t[w] = .other(.male) }
        for w in data.female { t[w] = .other(.female) }
        for w in data.generic { t[w] = .generic }
        for w in data.firstPerson { t[w] = .firstPerson }
        // "dads", "moms", "wifes": kin nouns with the apostrophe dropped.
        for (w, r) in t where w.count > 2 && !w.hasSuffix("s") {
            if case .other = r, t[w + "s"] == nil { t[w + "s"] = r }
        }
        table = t
    }

    func reference(_ word: String) -> PersonReference? { table[word] }
}
