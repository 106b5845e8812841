/// A medication-interaction warning for the wire's `safety.warning`.
public struct InteractionWarning: Sendable, Equatable, Codable {
    /// Always `medication_interaction`.
    public var kind: String
    /// The pair as lowercase generic names (or a class name such as `nsaids` when the patient
    /// named the class), sorted.
    public var drugs: [String]
    /// `high` or `moderate`.
    public var severity: String
    /// Plain-language advice.
    public var advice: String
    /// Where the interaction is documented ("FDA label (Plavix/clopidogrel): warnings …").
    public var source: String
    /// The id of the interaction entry in `interactions.json`.
    public var interactionId: String

    /// A warning about `drugs` (sorted here), with `kind` set to `medication_interaction`.
    public init(drugs: [String], severity: String, advice: String, source: String, interactionId: String) {
        self.kind = "medication_interaction"
        self.drugs = drugs.sorted()
        self.severity = severity
        self.advice = advice
        self.source = source
        self.interactionId = interactionId
    }
}

/// One medicine named in a message, and what the message says about it.
public struct MedicationMention: Sendable, Equatable {
    /// Whether the patient takes it, and whose it is.
    public enum Status: String, Sendable, Equatable {
        /// The patient takes it, is starting it, or asks about taking it.
        case taking
        /// The patient stopped it ("I stopped taking warfarin last year").
        case stopped
        /// The patient says they don't take it ("I'm not on any opioids").
        case notTaking
        /// Someone else takes it ("my wife takes Zoloft").
        case someoneElse
    }

    /// Lowercase generic name, or the class name ("nsaids").
    public var name: String
    /// What the message says about it.
    public var status: Status
    /// For ``Status/someoneElse``: who takes it, as the person word the conversation used
    /// ("dad", "wife"; a pronoun is resolved to the person it refers to), when known.
    public var person: String?

    /// For ``Status/someoneElse``: what the message says about that person and the medicine
    /// (`taking`, `stopped` or `notTaking`), read from the same cues as the patient's own.
    public var theirStatus: Status = .taking

    /// The daily dose in milligrams when the message states one next to the name ("40 mg").
    public var doseMg: Double?

    /// For ``Status/stopped``: how many days ago the message says it was stopped ("4 days ago",
    /// "last week", "years ago"), when it says so.
    public var stoppedDaysAgo: Double?

    /// A mention of `name` with its status.
    public init(name: String, status: Status, person: String? = nil, doseMg: Double? = nil, stoppedDaysAgo: Double? = nil) {
        self.name = name
        self.status = status
        self.person = person
        self.doseMg = doseMg
        self.stoppedDaysAgo = stoppedDaysAgo
    }
}
