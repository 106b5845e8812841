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
    /// Real English words close to a medicine's name by sound or spelling that the
    /// ``DrugNameResolver`` must not read as a name by distance (found with
    /// `medview safety vocab-audit`); `nil` in older files.
    var realWords: [String]?
}

/// Kinds of context cue in `drugs.json`.
enum MedicationCue: String, CaseIterable, Sendable {
    case stop, stopAfter, pastTime, start, use, negation, pseudoNegation, selfCue, pronounAfterStop, clauseBreak, caregiver
    /// A caring verb ("manage", "fill", "sort out") and a word for someone's medicines in the
    /// same clause make the patient a caregiver.
    case careVerb, medicinesNoun
    /// A medicine ruled out by what follows its name ("is off limits", "decided against it").
    case negationAfter
    /// "changed it to", "switched that for": the medicine named just before was replaced.
    case replaced
    /// A clinician's proposal ("wanted to give me", "suggested"): not taken when the message
    /// says something else was given "instead".
    case proposal
    /// What a proposal gave way to ("…wanted to give me cipro but I got nitrofurantoin", "…but
    /// prescribed nitrofurantoin in the end"): a later medicine given in its place.
    case overtaken
    /// "I'm only on simvastatin": the writer's other medicines named before it are not taken.
    case exclusive
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
        /// Generic names the rule never applies to, though their classes match (`except`).
        var exceptions: [String]?
        /// A dose limit: the rule applies only when the named medicine's stated daily dose is
        /// above `maxMg`, or when no dose was stated.
        var dose: DoseLimit?

        enum CodingKeys: String, CodingKey { case id, a, b, severity, group, advice, source, exceptions = "except", dose }
    }

    /// "Simvastatin above 20 mg with amlodipine".
    struct DoseLimit: Codable, Sendable {
        var drug: String
        var maxMg: Double
    }

    var about: String
    var interactions: [Interaction]
}

/// The contents of `Data/knowledge.json`: the drug knowledge base (ingredients, classes and
/// mechanisms for each medicine, mechanism-level rules with exceptions and dose limits), merged
/// at load with `drugs.json` and `interactions.json`.
struct DrugKnowledgeData: Codable, Sendable {
    var about: String
    /// Where the names and facts come from, and under what terms.
    var licence: String
    var drugs: [DrugLexiconData.Drug]
    var classes: [DrugLexiconData.DrugClass]
    var interactions: [InteractionData.Interaction]
}
