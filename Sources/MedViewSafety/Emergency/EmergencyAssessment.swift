/// A tappable action attached to emergency guidance, such as `tel:911`.
///
/// Maps one to one onto the wire's `SafetyAction`.
public struct EmergencyAction: Codable, Sendable, Equatable {
    /// What the button says: "Call 911".
    public var label: String
    /// A `tel:` or `sms:` link.
    public var href: String

    /// An action with its button text and link.
    public init(label: String, href: String) {
        self.label = label
        self.href = href
    }
}

/// The result of ``EmergencyDetector/assess(_:)`` for a message that describes an emergency
/// happening now.
///
/// Maps onto the wire's `safety.alert` (`category`, `severity`, `guidance`, `actions`); the
/// engine adds ``modelNote`` to the system prompt so the model's answer supports the guidance.
public struct EmergencyAssessment: Sendable, Equatable {
    /// The main category: `cardiac`, `stroke`, `breathing`, `bleeding`, `anaphylaxis`,
    /// `poisoning`, `suicide`, `seizure`, `unconscious`, `head_injury` or `pregnancy`.
    public var category: String
    /// Every category detected, the main one first.
    public var categories: [String]
    /// `emergency` (act now: call 911/988) or `urgent` (get help now, may not need an ambulance).
    public var severity: String
    /// Calm, short, actionable guidance, worded for the patient or for a bystander.
    public var guidance: String
    /// Call/text links, most important first (`tel:911`; `tel:988` and `sms:988` for suicide;
    /// `tel:18002221222` for poisoning).
    public var actions: [EmergencyAction]
    /// Whether the emergency is happening to someone other than the writer.
    public var isBystander: Bool
    /// The other person's gender as far as the message tells (`neutral` when unknown or for
    /// the writer).
    public var gender: Gender
    /// A note for the model's system prompt: the alert shown and how to support it.
    public var modelNote: String

    /// An assessment with every field given (the detector builds them; tests and fakes may too).
    public init(category: String, categories: [String], severity: String, guidance: String, actions: [EmergencyAction], isBystander: Bool, gender: Gender, modelNote: String) {
        self.category = category
        self.categories = categories
        self.severity = severity
        self.guidance = guidance
        self.actions = actions
        self.isBystander = isBystander
        self.gender = gender
        self.modelNote = modelNote
    }
}
