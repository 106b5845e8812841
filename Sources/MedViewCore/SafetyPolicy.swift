import MedViewSafety

/// The clinical safety checks the engine applies to one turn, injected so that Core reaches no
/// global state and a deployment (or a test) can run without them.
///
/// The input check runs on the patient's text before the model is called; the output guard sits
/// in the stream processing path (``ChunkPipeline``), so only text it has cleared is chunked.
public protocol SafetyPolicy: Sendable {
    /// Emergency signs in the patient's own message, if any (called while the message is being
    /// stored; its alert goes out right behind `stream.start`, before the model is called).
    func assessEmergency(_ text: String) -> EmergencyAssessment?
    /// Interaction warnings for `text`, given the conversation's earlier patient messages (oldest first).
    func checkMedications(history: [String], text: String) -> [InteractionWarning]
    /// The warnings for `text` given the conversation's medication context so far, and the
    /// context with `text` taken in (kept per conversation, so a new message costs the same
    /// however long the conversation is).
    func checkMedications(context: MedicationContext, text: String) -> (warnings: [InteractionWarning], context: MedicationContext)
    /// A fresh guard for one answer, or `nil` when model text is sent unchecked.
    func makeOutputGuard() -> StreamGuard?
    /// Loads whatever the checks need now, so the first message does not wait for it.
    func prepare()
    /// A second opinion from a model, run alongside the answer within a fixed budget: an alert
    /// the deterministic detector missed, or `nil` (nothing found, budget spent, model failed).
    /// Called only when `deterministic` is `nil`.
    func triage(_ text: String, deterministic: EmergencyAssessment?) async -> EmergencyAssessment?
    /// The system prompt for a turn whose safety notes are `notes` (emergency, interactions).
    func systemPrompt(notes: [String]) -> String
}

extension SafetyPolicy {
    public func triage(_ text: String, deterministic: EmergencyAssessment?) async -> EmergencyAssessment? { nil }
    public func systemPrompt(notes: [String]) -> String { SafetyPrompt.systemPrompt(notes: notes) }
}

/// Emergency alerts, medication warnings and the output guard (docs/SAFETY.md).
public struct ClinicalSafetyPolicy: SafetyPolicy {
    private let detector: EmergencyDetector
    private let checker: MedicationChecker
    private let outputPolicy: OutputPolicy
    private let modelTriage: ModelTriage?

    /// - Parameters:
    ///   - detector, checker, outputPolicy: the loaded rules (the server passes the bundled ones).
    ///   - triage: a model's second opinion on each message (the server sets it up for cloud models).
    public init(detector: EmergencyDetector, checker: MedicationChecker, outputPolicy: OutputPolicy = .standard, triage: ModelTriage? = nil) {
        self.detector = detector
        self.checker = checker
        self.outputPolicy = outputPolicy
        self.modelTriage = triage
    }

    public func triage(_ text: String, deterministic: EmergencyAssessment?) async -> EmergencyAssessment? {
        guard let modelTriage else { return nil }
        if case .alert(let assessment) = await modelTriage.triage(text, deterministic: deterministic) { return assessment }
        return nil
    }

    public func assessEmergency(_ text: String) -> EmergencyAssessment? {
        detector.assess(text)
    }

    public func checkMedications(history: [String], text: String) -> [InteractionWarning] {
        var medications = MedicationContext()
        for earlier in history {
            _ = checker.check(earlier, context: &medications)
        }
        return checker.check(text, context: &medications)
    }

    public func checkMedications(context: MedicationContext, text: String) -> (warnings: [InteractionWarning], context: MedicationContext) {
        var medications = context
        let warnings = checker.check(text, context: &medications)
        return (warnings, medications)
    }

    public func makeOutputGuard() -> StreamGuard? {
        StreamGuard(policy: outputPolicy)
    }

    public func prepare() {
        _ = StreamGuard(policy: outputPolicy)
    }
}

/// No clinical checks: for benchmarks that measure the engine alone. Never the default.
public struct NoSafetyPolicy: SafetyPolicy {
    public init() {}
    public func assessEmergency(_ text: String) -> EmergencyAssessment? { nil }
    public func checkMedications(history: [String], text: String) -> [InteractionWarning] { [] }
    public func checkMedications(context: MedicationContext, text: String) -> (warnings: [InteractionWarning], context: MedicationContext) { ([], context) }
    public func makeOutputGuard() -> StreamGuard? { nil }
    public func prepare() {}
}
