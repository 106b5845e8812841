import Foundation
import Logging
import MedViewAWS
import MedViewCore

/// How stored PHI is encrypted: which key provider wraps the data keys. Resolved once at the edge.
public struct EncryptionSettings: Sendable, Equatable {
    /// The key provider.
    public enum Provider: Sendable, Equatable {
        /// A master key file; `nil` means `master.key` in the data directory.
        case local(masterKeyFile: String?)
        /// AWS KMS with this key id, alias or ARN.
        case kms(keyId: String)
        /// No encryption (development and benchmarks only; production refuses it).
        case off
    }

    public var provider: Provider

    /// Local key file in the data directory: the embedded default.
    public init(provider: Provider = .local(masterKeyFile: nil)) {
        self.provider = provider
    }

    /// The wrapped data keys' SQLite file in `dataDirectory` (separate from the conversations).
    public static func keyDatabasePath(dataDirectory: String) -> String {
        (dataDirectory as NSString).appendingPathComponent("keys.sqlite")
    }

    /// The master key file the local provider uses.
    public func masterKeyFile(dataDirectory: String) -> String? {
        guard case .local(let file) = provider else { return nil }
        return file ?? (dataDirectory as NSString).appendingPathComponent("master.key")
    }

    /// The key provider these settings name, or `nil` when encryption is off. The local key file
    /// is created now if missing; KMS is not called until the first key is needed.
    public func makeKeyProvider(dataDirectory: String, environment: [String: String]) throws -> (any KeyProvider)? {
        switch provider {
        case .off:
            return nil
        case .local:
            return try LocalKeyProvider.load(path: masterKeyFile(dataDirectory: dataDirectory)!)
        case .kms(let keyId):
            do throws(KMSError) {
                return KMSKeyProvider(keyId: keyId, client: try KMSClient.fromEnvironment(environment, keyId: keyId))
            } catch {
                throw EncryptionError.providerUnavailable(error.description)
            }
        }
    }

    /// `base` wrapped in an ``EncryptedConversationStore`` whose keys live in the data directory's
    /// key database; `base` itself when encryption is off.
    public func encrypting(_ base: any ConversationStore, dataDirectory: String, environment: [String: String], logger: Logger) async throws -> any ConversationStore {
        try await encrypting(base, dataDirectory: dataDirectory, environment: environment) {
            try await SQLiteDataKeyStore.open(path: Self.keyDatabasePath(dataDirectory: dataDirectory), logger: logger)
        }
    }

    /// `base` wrapped in an ``EncryptedConversationStore`` whose keys live in the key store
    /// `openKeyStore` opens (called only when encryption is on); `base` itself when encryption is
    /// off. The one place that decides whether a store is encrypted, whichever store it is.
    public func encrypting(_ base: any ConversationStore, dataDirectory: String, environment: [String: String], openKeyStore: () async throws -> any DataKeyStore) async throws -> any ConversationStore {
        guard let provider = try makeKeyProvider(dataDirectory: dataDirectory, environment: environment) else { return base }
        return EncryptedConversationStore(base: base, ring: DataKeyRing(provider: MeteredKeyProvider(provider), keyStore: try await openKeyStore()))
    }

    /// A line for the start-up announcement.
    public func describe(dataDirectory: String) -> String {
        switch provider {
        case .off: "OFF (messages are stored in clear; development only)"
        case .local: "AES-256-GCM, data keys wrapped by the local master key \(masterKeyFile(dataDirectory: dataDirectory) ?? "")"
        case .kms(let keyId): "AES-256-GCM, data keys from AWS KMS key \(keyId)"
        }
    }
}
