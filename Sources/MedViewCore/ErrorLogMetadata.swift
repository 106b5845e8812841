import Logging

extension Logger.Metadata {
    /// What a log line may say about a failure: its type, and for a ``StoreError`` its detail,
    /// which by that type's contract names only the operation and a code (a SQLSTATE, an SQLite
    /// result code), never user data. Without the detail a `storage_unavailable` in production
    /// could not be told apart: a serialization failure, a lost connection, a full disk.
    /// Other errors give their type only; their descriptions may quote what they were given.
    /// `fields` are the line's other fields.
    static func failure(_ error: any Error, _ fields: Logger.Metadata = [:]) -> Logger.Metadata {
        var metadata = fields
        metadata["error.type"] = "\(type(of: error))"
        switch error as? StoreError {
        case .unavailable(let detail)?: metadata["error.detail"] = "\(detail)"
        case .tooManyStreams(let limit)?: metadata["error.detail"] = "too many streams (limit \(limit))"
        case .conversationNotFound?: metadata["error.detail"] = "conversation not found"
        case nil: break
        }
        return metadata
    }
}
