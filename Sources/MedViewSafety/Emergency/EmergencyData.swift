/// The contents of `Data/emergency.json`: categories with their guidance, the phrases that
/// signal them, idioms that look like them, and the context cues.
struct EmergencyData: Codable, Sendable {
    struct Guidance: Codable, Sendable {
        var selfText: String
        var bystander: String
        enum CodingKeys: String, CodingKey { case selfText = "self", bystander }
    }

    struct Category: Codable, Sendable {
        var id: String
        /// Plain-language name, used in the model note ("stroke").
        var name: String
        /// Default severity of the category's signals: `emergency` or `urgent`.
        var severity: String
        var selfText: String
        var bystander: String
        /// Alternative guidance for some signals (`internal` bleeding).
        var variants: [String: Guidance]?
        var actions: [EmergencyAction]
        /// What the model must do, added to the model note.
        var note: String
        enum CodingKeys: String, CodingKey { case id, name, severity, selfText = "self", bystander, variants, actions, note }
    }

    struct Signal: Codable, Sendable {
        var id: String
        /// The category it signals; `nil` for signals used only in combinations.
        var category: String?
        /// Overrides the category's severity.
        var severity: String?
        /// Which guidance variant of the category applies.
        var variant: String?
        /// The match must contain a number at least this large ("took 15 tylenol").
        var minNumber: Double?
        var patterns: [String]
    }

    struct Combination: Codable, Sendable {
        var category: String
        var severity: String
        /// Signal ids that must all be present (each in a current context).
        var all: [String]
        /// Signal ids this combination explains when it matches: their own category then never
        /// becomes the main one ("crushing chest pain, left arm numb" is cardiac, not stroke).
        var absorbs: [String]?
    }

    var about: String
    /// Category order used to pick the main category when several match with one severity.
    var priority: [String]
    var categories: [Category]
    var signals: [Signal]
    var combinations: [Combination]
    var idioms: [String]
    var cues: [String: [String]]
}

/// Kinds of context cue in `emergency.json`'s `cues`.
enum EmergencyCue: String, CaseIterable, Sendable {
    case negation, postNegation, uncertain, historyVerb, historyTime, recent, recurrence
    case information, informationAfter, hypothetical, habitual, jest, clauseBreak, pastEvent, benignCause, assessed
    case strongHypothetical, settled, pastDay
}
