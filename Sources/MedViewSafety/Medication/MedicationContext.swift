/// What a conversation has said about the patient's medicines so far. A value the engine keeps
/// per conversation and persists (it is `Codable`); ``MedicationChecker/check(_:context:)``
/// updates it with every patient message.
///
/// Invariants: `medicines` holds each name once, in the order first mentioned; a pair is in
/// `warnedPairs` once it has been warned about and is never warned about again.
public struct MedicationContext: Codable, Sendable, Equatable {
    /// Medicines the patient takes or is considering, as generic (or class) names.
    public private(set) var medicines: [String]
    /// Pairs already warned about in this conversation, as "a+b" with the names sorted.
    public private(set) var warnedPairs: [String]
    /// The medicines the latest message with any named, so "I stopped it" can refer to them.
    public private(set) var lastMentioned: [String]
    /// Medicines other people take, by person word ("dad": ["warfarin"]). They never pair with
    /// the patient's own; a pair of one person's is warned about (to the writer, for them).
    public private(set) var others: [String: [String]]
    /// The other person most recently named, so "can I give him Advil?" finds "him".
    public private(set) var lastPerson: String?
    /// People the patient says they care for ("can I give him…", "is that ok for her?"). Kept
    /// for the record; every person's own pairs are warned about, cared for or not.
    public private(set) var caredFor: [String]
    /// Daily doses in mg the patient stated, by generic name ("simvastatin": 40), for
    /// dose-limited rules.
    public private(set) var doses: [String: Double]
    /// Medicines the latest message named as a clinician's proposal ("doc wanted clarithromycin"),
    /// so a next message's "… instead" can replace them.
    public private(set) var lastProposed: [String]

    /// An empty context, for a new conversation.
    public init() {
        medicines = []
        warnedPairs = []
        lastMentioned = []
        others = [:]
        lastPerson = nil
        caredFor = []
        doses = [:]
        lastProposed = []
    }

    private enum CodingKeys: String, CodingKey {
        case medicines, warnedPairs, lastMentioned, others, lastPerson, caredFor, doses, lastProposed
    }

    /// Decodes a context; those stored before `others` existed decode with it empty.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        medicines = try c.decode([String].self, forKey: .medicines)
        warnedPairs = try c.decode([String].self, forKey: .warnedPairs)
        lastMentioned = try c.decode([String].self, forKey: .lastMentioned)
        others = try c.decodeIfPresent([String: [String]].self, forKey: .others) ?? [:]
        lastPerson = try c.decodeIfPresent(String.self, forKey: .lastPerson)
        caredFor = try c.decodeIfPresent([String].self, forKey: .caredFor) ?? []
        doses = try c.decodeIfPresent([String: Double].self, forKey: .doses) ?? [:]
        lastProposed = try c.decodeIfPresent([String].self, forKey: .lastProposed) ?? []
    }

    mutating func setDose(_ mg: Double, for name: String) {
        doses[name] = mg
    }

    mutating func addCaredFor(_ person: String) {
        if !caredFor.contains(person) { caredFor.append(person) }
    }

    mutating func add(_ name: String, for person: String) {
        if !others[person, default: []].contains(name) { others[person, default: []].append(name) }
    }

    mutating func remove(_ name: String, for person: String) {
        others[person]?.removeAll { $0 == name }
    }

    mutating func setLastProposed(_ names: [String]) {
        lastProposed = names
    }

    mutating func setLastPerson(_ person: String) {
        lastPerson = person
    }

    mutating func add(_ name: String) {
        if !medicines.contains(name) { medicines.append(name) }
    }

    mutating func remove(_ name: String) {
        medicines.removeAll { $0 == name }
    }

    /// Records the pair; returns `false` if it was warned about before.
    /// Another person's pairs are keyed apart ("dad:a+b").
    mutating func markWarned(_ a: String, _ b: String, person: String? = nil) -> Bool {
        let key = (person.map { $0 + ":" } ?? "") + [a, b].sorted().joined(separator: "+")
        guard !warnedPairs.contains(key) else { return false }
        warnedPairs.append(key)
        return true
    }

    mutating func setLastMentioned(_ names: [String]) {
        lastMentioned = names
    }
}
