import Foundation
import Logging
import MedViewCore
import MedViewPostgres
import MedViewStore

/// Why an operator command (`medview keys rotate`, `medview audit`) stopped. Details never hold
/// key material, PHI or a password.
public enum OperatorToolError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Encryption is off: there are no data keys.
    case encryptionOff
    /// Rotation stopped part-way (keys re-wrapped before stay re-wrapped; running it again goes on).
    case rotationStopped(String)
    /// The keys were re-wrapped but the audit log could not record it.
    case rotationNotAudited(rewrapped: Int, detail: String)
    /// There is no SQLite audit log at this path.
    case noAuditLog(path: String)
    /// The local master key file does not exist (rotation never creates one: a new file could
    /// open none of the existing data keys).
    case masterKeyFileMissing(path: String)

    public var description: String {
        switch self {
        case .encryptionOff: "Encryption is off: there are no keys to rotate."
        case .rotationStopped(let detail): "rotation stopped: \(detail) (keys re-wrapped so far stay re-wrapped; run again once the cause is fixed)"
        case .rotationNotAudited(let rewrapped, let detail): "re-wrapped \(rewrapped) data key(s), but the audit log could not record it: \(detail)"
        case .noAuditLog(let path): "No audit log at \(path)."
        case .masterKeyFileMissing(let path): "No master key file at \(path): give the file the servers use (--master-key-file or --data-dir)."
        }
    }
}

/// What `medview keys rotate` did.
public struct KeyRotationSummary: Sendable, Equatable {
    public var report: KeyRotation.Report
    /// `local` or `kms`.
    public var provider: String
    /// The master key every data key is now wrapped under.
    public var masterKeyId: String
}

/// Re-wraps every data key of the configured store (the PostgreSQL `data_keys` table with a
/// database URL, else `keys.sqlite`) under the provider's current master key, and records a
/// `keys.rotated` entry in the same deployment's audit log (outcome `failed` with a reason code if
/// it stops). `medview keys rotate` runs this.
/// - Parameter actor: who ran it, for the audit entry (the operating-system user).
/// - Throws: ``OperatorToolError``, or a ``StartupError`` when the database cannot be opened.
public func rotateDataKeys(configuration: ServerConfiguration, actor: String?, logger: Logger) async throws -> KeyRotationSummary {
    if let file = configuration.encryption.masterKeyFile(dataDirectory: configuration.dataDirectory), !FileManager.default.fileExists(atPath: file) {
        throw OperatorToolError.masterKeyFileMissing(path: file)
    }
    let provider: any KeyProvider
    do {
        guard let made = try configuration.encryption.makeKeyProvider(dataDirectory: configuration.dataDirectory, environment: configuration.processEnvironment) else {
            throw OperatorToolError.encryptionOff
        }
        provider = made
    } catch let error as OperatorToolError {
        throw error
    } catch {
        throw OperatorToolError.rotationStopped("\(error)")
    }
    if let database = configuration.database {
        return try await withPostgresStore(database, environment: configuration.processEnvironment, logger: logger) { postgres in
            try await rotate(keys: PostgresDataKeyStore(store: postgres, logger: logger), audit: PostgresAuditStore(store: postgres, logger: logger), provider: provider, actor: actor)
        }
    }
    let keys = try await SQLiteDataKeyStore.open(path: EncryptionSettings.keyDatabasePath(dataDirectory: configuration.dataDirectory), logger: logger)
    let audit: SQLiteAuditStore
    do {
        audit = try await SQLiteAuditStore.open(path: SQLiteAuditStore.path(dataDirectory: configuration.dataDirectory), logger: logger)
    } catch {
        try? await keys.close()
        throw error
    }
    let result: Result<KeyRotationSummary, any Error>
    do {
        result = .success(try await rotate(keys: keys, audit: audit, provider: provider, actor: actor))
    } catch {
        result = .failure(error)
    }
    try? await keys.close()
    try? await audit.close()
    return try result.get()
}

/// Rotates, then appends the `keys.rotated` entry (never PHI: the master key id and who ran it).
private func rotate(keys: any DataKeyStore, audit: any AuditStore, provider: any KeyProvider, actor: String?) async throws -> KeyRotationSummary {
    func event(_ outcome: AuditEvent.Outcome, reason: String? = nil) -> AuditEvent {
        AuditEvent(action: .keysRotated, userId: actor.map { "operator:" + $0 }, channelId: "cli", record: "master_key:\(provider.currentMasterKeyId)", outcome: outcome, reason: reason)
    }
    let report: KeyRotation.Report
    do {
        report = try await KeyRotation.rotate(keyStore: keys, provider: provider)
    } catch {
        _ = try? await audit.appendChained([event(.failed, reason: rotationFailureCode(error))])
        throw OperatorToolError.rotationStopped("\(error)")
    }
    do {
        try await audit.appendChained([event(.success)])
    } catch {
        throw OperatorToolError.rotationNotAudited(rewrapped: report.rewrapped, detail: "\(error)")
    }
    return KeyRotationSummary(report: report, provider: provider.name, masterKeyId: provider.currentMasterKeyId)
}

/// A short code for the audit entry of a failed rotation.
private func rotationFailureCode(_ error: any Error) -> String {
    switch error {
    case EncryptionError.unwrapFailed: "unwrap_failed"
    case EncryptionError.providerUnavailable: "provider_unavailable"
    case is EncryptionError: "encryption_failed"
    case is StoreError: "storage_unavailable"
    default: "failed"
    }
}

/// The configured deployment's audit entries in stored order, optionally only those at or after
/// `since`: the PostgreSQL `audit_log` table with a database URL, else `audit.sqlite` in the data
/// directory. `medview audit verify|export` run this.
/// - Throws: ``OperatorToolError/noAuditLog(path:)`` when the SQLite file does not exist; a
///   ``StartupError`` when the database cannot be opened.
public func readAuditLog(configuration: ServerConfiguration, since: Date?, logger: Logger) async throws -> [AuditEntry] {
    if let database = configuration.database {
        return try await withPostgresStore(database, environment: configuration.processEnvironment, logger: logger) { postgres in
            try await PostgresAuditStore(store: postgres, logger: logger).entries(since: since)
        }
    }
    let path = SQLiteAuditStore.path(dataDirectory: configuration.dataDirectory)
    guard FileManager.default.fileExists(atPath: path) else { throw OperatorToolError.noAuditLog(path: path) }
    let store = try await SQLiteAuditStore.open(path: path, logger: logger)
    do {
        let entries = try await store.entries(since: since)
        try await store.close()
        return entries
    } catch {
        try? await store.close()
        throw error
    }
}
