/// The contents of `Data/findings.json`: the clinical vocabulary a message is read into, and
/// the red-flag rules that combine findings (see ``ClinicalFindings``).
struct FindingsData: Codable, Sendable {
    /// A finding made of several concepts close together in one clause ("pain … in my chest").
    struct Composite: Codable, Sendable {
        var id: String
        /// Concepts that must all occur.
        var all: [String]
        /// Most words from the first part to the last.
        var window: Int
        /// `sentence` lets the parts sit in different clauses of one sentence ("I took my
        /// sleeping pills and then my pain pills, way too many"); by default one clause.
        var scope: String?
    }

    /// A finding read from a number: next to a concept (`near`: "sugar is 45") or inside its
    /// match (`inside`: "6 weeks old"), within [`atLeast`, `below`).
    struct Measure: Codable, Sendable {
        var id: String
        var near: String?
        var inside: String?
        var atLeast: Double?
        var below: Double?
    }

    /// A red-flag rule: every id of `all`, at least `minAny` (default 1) of `any`, and at least
    /// one of `also` when given; ids are findings or groups.
    struct Rule: Codable, Sendable {
        var id: String
        var category: String
        var severity: String?
        var all: [String]?
        var any: [String]?
        var minAny: Int?
        var also: [String]?
        /// Whether a finding that has just resolved still counts ("it went away after ten
        /// minutes": a transient ischemic attack is still an emergency).
        var transient: Bool?
        /// Categories of the signal phrases this rule explains better: when both fire, this
        /// rule's category is the alert ("pressure in my chest, left arm tingling" is a heart
        /// attack, not a stroke).
        var overrides: [String]?
        /// Findings or groups that cancel ``overrides`` when present (a slurred speech keeps a
        /// stroke a stroke, asthma keeps breathing trouble a breathing emergency).
        var overridesUnless: [String]?
        /// Whether "had a seizure" (a past-tense verb, not a date) still counts: for a young
        /// child it happened just now.
        var pastVerbCounts: Bool?
        /// The published criterion the rule states.
        var source: String
    }

    var about: String
    /// Concept id → patterns (PatternExpander notation).
    var concepts: [String: [String]]
    /// Concepts that set the scene rather than describe a symptom (an infection, diabetes, a
    /// pregnancy, a child, an allergen, a head injury): they count even when told in the past
    /// ("had a UTI for a few days", "gave birth a week ago"), though not when negated,
    /// hypothetical or asked about in general.
    var background: [String]?
    /// States that last after the event that began them ("c-section", "had surgery"): a time told
    /// right after one dates the state's start, not what follows it ("c-section a week ago, fever 39").
    var datedStates: [String]?
    var composites: [Composite]
    var measures: [Measure]
    /// Group id → finding ids (any of them).
    var groups: [String: [String]]
    var rules: [Rule]
}
