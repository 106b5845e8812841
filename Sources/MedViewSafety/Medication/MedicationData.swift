/// The contents of `Data/drugs.json` and `Data/interactions.json`.
struct DrugLexiconData: Codable, Sendable {
    struct Drug: Codable, Sendable {
        /// Lowercase US generic name, the name reported in warnings.
        var generic: String
        /// Brand names, abbreviations and common aliases.
        var names: [String]
        /// Class ids from `classes`.
        var classes: [String]
    }

    struct DrugClass: Codable, Sendable {
        var id: String
        /// Name reported in warnings when the patient names the class ("nsaids").
        var label: String
        /// Ways patients name the class.
        var names: [String]
    }

    var about: String
    var drugs: [Drug]
    var classes: [DrugClass]
    /// Context cue lists by kind (see ``MedicationCue``).
    var cues: [String: [String]]
}

/// Kinds of context cue in `drugs.json`.
enum MedicationCue: String, CaseIterable, Sendable {
    case stop, stopAfter, pastTime, start, use, negation, pseudoNegation, selfCue, pronounAfterStop, clauseBreak, caregiver
}

struct InteractionData: Codable, Sendable {
    struct Interaction: Codable, Sendable {
        var id: String
        /// One side: generic names or `class:<id>`.
        var a: [String]
        /// The other side.
        var b: [String]
        /// `high` or `moderate`.
        var severity: String
        /// What goes wrong (`bleeding`, `serotonin syndrome`), for the evaluation report.
        var group: String
        /// Plain-language advice for the patient.
        var advice: String
        /// Where the interaction is documented.
        var source: String
    }

    var about: String
    var interactions: [Interaction]
}
