import Foundation
import MedViewAWS
import MedViewCore

/// Data keys from AWS KMS: `GenerateDataKey` (AES_256) under the configured key, `Decrypt` to
/// unwrap, `Decrypt` then `Encrypt` to re-wrap under the current key. Every call carries an
/// encryption context naming the user, the conversation and the key version, so a wrapped key
/// copied to another conversation is refused by KMS itself.
public struct KMSKeyProvider: KeyProvider {
    public let name = "kms"
    /// The configured key id, alias or ARN (recorded with each key it wraps).
    public let currentMasterKeyId: String
    let client: KMSClient

    public init(keyId: String, client: KMSClient) {
        self.currentMasterKeyId = keyId
        self.client = client
    }

    /// The encryption context of `context`.
    static func encryptionContext(_ context: DataKeyContext) -> [String: String] {
        ["medview:user": context.userId, "medview:conversation": context.conversationId, "medview:key-version": String(context.version)]
    }

    public func generateDataKey(for context: DataKeyContext) async throws -> GeneratedDataKey {
        do throws(KMSError) {
            let (plaintext, blob) = try await client.generateDataKey(keyId: currentMasterKeyId, context: Self.encryptionContext(context))
            return GeneratedDataKey(plaintext: plaintext, wrapped: WrappedDataKey(context: context, provider: name, masterKeyId: currentMasterKeyId, blob: blob, createdAt: Date()))
        } catch {
            throw Self.encryptionError(error)
        }
    }

    public func unwrap(_ key: WrappedDataKey) async throws -> Data {
        guard key.provider == name else { throw EncryptionError.unwrapFailed("the data key was wrapped by provider \(key.provider)") }
        do throws(KMSError) {
            return try await client.decrypt(ciphertextBlob: key.blob, keyId: key.masterKeyId, context: Self.encryptionContext(key.context))
        } catch {
            throw Self.encryptionError(error)
        }
    }

    public func rewrap(_ key: WrappedDataKey) async throws -> WrappedDataKey {
        let plaintext = try await unwrap(key)
        do throws(KMSError) {
            let blob = try await client.encrypt(plaintext: plaintext, keyId: currentMasterKeyId, context: Self.encryptionContext(key.context))
            return WrappedDataKey(context: key.context, provider: name, masterKeyId: currentMasterKeyId, blob: blob, createdAt: key.createdAt)
        } catch {
            throw Self.encryptionError(error)
        }
    }

    static func encryptionError(_ error: KMSError) -> EncryptionError {
        switch error {
        case .invalidCiphertext: .unwrapFailed(error.description)
        case .service, .unreachable, .malformedResponse: .providerUnavailable(error.description)
        }
    }
}
