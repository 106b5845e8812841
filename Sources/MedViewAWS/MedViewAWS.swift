/// AWS protocol pieces written here: SigV4 signing, the event-stream codec, credentials.
public enum MedViewAWS {
    /// Version of this module's wire implementations.
    public static let version = "0"
}
