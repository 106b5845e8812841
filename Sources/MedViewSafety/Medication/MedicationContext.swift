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

    /// An empty context, for a new conversation.
    public init() {
        medicines = []
        warnedPairs = []
        lastMentioned = []
    }

    mutating func add(_ name: String) {
        if !medicines.contains(name) { medicines.append(name) }
    }

    mutating func remove(_ name: String) {
        medicines.removeAll { $0 == name }
    }

    /// Records the pair; returns `false` if it was warned about before.
    mutating func markWarned(_ a: String, _ b: String) -> Bool {
        let key = [a, b].sorted().joined(separator: "+")
        guard !warnedPairs.contains(key) else { return false }
        warnedPairs.append(key)
        return true
    }

    mutating func setLastMentioned(_ names: [String]) {
        lastMentioned = names
    }
}
