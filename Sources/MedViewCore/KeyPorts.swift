import Foundation

/// Which data key a ciphertext needs, and what a wrapped data key is bound to: one version of
/// one conversation's key, belonging to one user.
public struct DataKeyContext: Sendable, Hashable {
    public var userId: String
    public var conversationId: String
    /// The conversation's key version (1 for its first key).
    public var version: Int

    public init(userId: String, conversationId: String, version: Int) {
        self.userId = userId
        self.conversationId = conversationId
        self.version = version
    }
}

/// A conversation's data key as persisted: wrapped (encrypted) by a master key, never in clear.
public struct WrappedDataKey: Sendable, Equatable {
    public var context: DataKeyContext
    /// The provider that wrapped it (`local`, `kms`).
    public var provider: String
    /// The master key that wrapped it (a local key id, or a KMS key id/ARN).
    public var masterKeyId: String
    /// The provider's opaque wrapped bytes.
    public var blob: Data
    public var createdAt: Date

    public init(context: DataKeyContext, provider: String, masterKeyId: String, blob: Data, createdAt: Date) {
        self.context = context
        self.provider = provider
        self.masterKeyId = masterKeyId
        self.blob = blob
        self.createdAt = createdAt
    }
}

/// A fresh data key: its 32 plaintext bytes (memory only) and the same key wrapped for storage.
public struct GeneratedDataKey: Sendable {
    public var plaintext: Data
    public var wrapped: WrappedDataKey

    public init(plaintext: Data, wrapped: WrappedDataKey) {
        self.plaintext = plaintext
        self.wrapped = wrapped
    }
}

/// Wraps and unwraps data keys under a master key (a local key file, AWS KMS).
///
/// The wrapping is bound to the key's ``DataKeyContext``: unwrapping with another context fails.
/// Errors are ``EncryptionError``.
public protocol KeyProvider: Sendable {
    /// `local` or `kms`: recorded with every wrapped key.
    var name: String { get }
    /// The master key new data keys are wrapped under.
    var currentMasterKeyId: String { get }
    /// A new random 256-bit data key for `context`, wrapped under the current master key.
    func generateDataKey(for context: DataKeyContext) async throws -> GeneratedDataKey
    /// The plaintext of `key`.
    func unwrap(_ key: WrappedDataKey) async throws -> Data
    /// `key` wrapped again under the current master key (same plaintext, new blob).
    func rewrap(_ key: WrappedDataKey) async throws -> WrappedDataKey
}

/// Persisted wrapped data keys, one row per (conversation, version). Implementations: SQLite,
/// PostgreSQL, in memory; all run `DataKeyStoreConformance`.
public protocol DataKeyStore: Sendable {
    /// Stores `key` unless a key with the same conversation and version exists; returns the stored one.
    func insertOrGet(_ key: WrappedDataKey) async throws -> WrappedDataKey
    /// The conversation's keys, oldest version first; empty if none or if they are not the user's.
    func keys(conversationId: String, userId: String) async throws -> [WrappedDataKey]
    /// Destroys the conversation's keys (erasure); returns how many were deleted.
    func deleteKeys(conversationId: String, userId: String) async throws -> Int
    /// Up to `limit` keys not wrapped by `masterKeyId`, for rotation.
    func keys(notWrappedBy masterKeyId: String, limit: Int) async throws -> [WrappedDataKey]
    /// Replaces the wrapping of `key` only if it is still wrapped by `previousMasterKeyId`; `false` otherwise.
    func replaceWrapping(_ key: WrappedDataKey, previousMasterKeyId: String) async throws -> Bool
    /// Closes connections; unusable afterwards.
    func close() async throws
}

/// Why a value could not be encrypted or decrypted. Never carries plaintext or key bytes.
public enum EncryptionError: Error, Sendable, Equatable {
    /// The ciphertext was altered, or belongs to another user, conversation, record or field.
    case authenticationFailed
    /// The data key version the value names does not exist (erased, or never created).
    case keyNotFound
    /// A stored value is not in the envelope format.
    case malformedEnvelope
    /// The master key that wrapped a data key is not available, or refused to unwrap it.
    case unwrapFailed(String)
    /// The key provider failed (unreachable, refused); the detail never contains key material.
    case providerUnavailable(String)
}
