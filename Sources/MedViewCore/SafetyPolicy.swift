import MedViewSafety

/// The clinical safety checks the engine applies to one turn, injected so that Core reaches no
/// global state and a deployment (or a test) can run without them.
///
/// The input check runs on the patient's text before the model is called; the output guard sits
/// in the stream processing path (``ChunkPipeline``), so only text it has cleared is chunked.
public protocol SafetyPolicy: Sendable {
    /// Emergency signs in the patient's own message, if any (called before anything is stored).
    func assessEmergency(_ text: String) -> EmergencyAssessment?
    /// Interaction warnings for `text`, given the conversation's earlier patient messages (oldest first).
    func checkMedications(history: [String], text: String) -> [InteractionWarning]
    /// A fresh guard for one answer, or `nil` when model text is sent unchecked.
    func makeOutputGuard() -> StreamGuard?
    /// Loads whatever the checks need now, so the first message does not wait for it.
    func prepare()
}

/// Emergency alerts, medication warnings and the output guard (docs/SAFETY.md).
public struct ClinicalSafetyPolicy: SafetyPolicy {
    private let detector: EmergencyDetector
    private let checker: MedicationChecker
    private let outputPolicy: OutputPolicy

    /// - Parameters: the loaded detector, checker and output rules (the server passes the bundled ones).
    public init(detector: EmergencyDetector, checker: MedicationChecker, outputPolicy: OutputPolicy = .standard) {
        self.detector = detector
        self.checker = checker
        self.outputPolicy = outputPolicy
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
    public func makeOutputGuard() -> StreamGuard? { nil }
    public func prepare() {}
}
