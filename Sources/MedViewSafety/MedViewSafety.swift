/// Clinical safety for the stream: emergency detection, medication-interaction warnings and PHI redaction.
public enum MedViewSafety {
    /// Version of the safety layer's data and rules.
    public static let version = "0"
}
