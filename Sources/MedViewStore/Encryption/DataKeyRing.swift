import Crypto
import Foundation
import MedViewCore
import Synchronization

/// Each conversation's data keys: created on first use from the provider's current master key,
/// persisted wrapped in a ``DataKeyStore``, unwrapped on demand and cached in memory.
///
/// Invariants: a plaintext data key lives only in this cache (bounded to `cacheLimit` entries,
/// cleared wholesale when full); ``erase(conversationId:userId:)`` evicts before it deletes, so
/// no key of an erased conversation survives here.
public final class DataKeyRing: Sendable {
    public let provider: any KeyProvider
    public let keyStore: any DataKeyStore
    private let cache = Mutex<[DataKeyContext: SymmetricKey]>([:])
    /// The newest known key of each conversation whose key is cached.
    private let current = Mutex<[String: DataKeyContext]>([:])
    private let cacheLimit: Int

    public init(provider: any KeyProvider, keyStore: any DataKeyStore, cacheLimit: Int = 4096) {
        self.provider = provider
        self.keyStore = keyStore
        self.cacheLimit = cacheLimit
    }

    /// The newest key of the conversation, for encrypting; creates version 1 when it has none and
    /// `create` is true, else returns `nil`.
    ///
    /// `fresh`: the conversation is being created now, under an id just made (so it has no key
    /// yet): version 1 is created without first reading the key store for keys it cannot have
    /// (one round trip to the database fewer for a new conversation). Should the id have a key
    /// after all, the key store keeps that one and it is returned, as without `fresh`.
    /// - Throws: ``StoreError/conversationNotFound`` if the conversation id has keys of another user.
    func currentKey(userId: String, conversationId: String, create: Bool, fresh: Bool = false) async throws -> (version: Int, key: SymmetricKey)? {
        let fresh = fresh && create
        if !fresh {
            if let hit = cache.withLock({ cache in
                current.withLock { $0[conversationId] }.flatMap { context in
                    context.userId == userId ? cache[context].map { (context.version, $0) } : nil
                }
            }) { return hit }
            if let newest = try await newestStoredKey(userId: userId, conversationId: conversationId) { return newest }
        }
        guard create else { return nil }
        let context = DataKeyContext(userId: userId, conversationId: conversationId, version: 1)
        let generated = try await provider.generateDataKey(for: context)
        let kept = try await keyStore.insertOrGet(generated.wrapped)
        guard kept.context.userId == userId else { throw StoreError.conversationNotFound }
        if kept.blob == generated.wrapped.blob {
            let key = SymmetricKey(data: generated.plaintext)
            remember(key, for: context)
            return (1, key)
        }
        // Not fresh after all: its newest key, which may be past version 1.
        if fresh, let newest = try await newestStoredKey(userId: userId, conversationId: conversationId) { return newest }
        return (kept.context.version, try await key(for: kept))
    }

    /// The newest key the key store holds for the user's conversation, unwrapped, if any.
    private func newestStoredKey(userId: String, conversationId: String) async throws -> (version: Int, key: SymmetricKey)? {
        guard let newest = try await keyStore.keys(conversationId: conversationId, userId: userId).last else { return nil }
        return (newest.context.version, try await key(for: newest))
    }

    /// The key for `context`, for decrypting.
    /// - Throws: ``EncryptionError/keyNotFound`` if it does not exist (erased).
    func key(_ context: DataKeyContext) async throws -> SymmetricKey {
        if let cached = cache.withLock({ $0[context] }) { return cached }
        let stored = try await keyStore.keys(conversationId: context.conversationId, userId: context.userId)
        guard let wrapped = stored.first(where: { $0.context.version == context.version }) else {
            throw EncryptionError.keyNotFound
        }
        return try await key(for: wrapped)
    }

    /// Destroys the conversation's keys: evicted here, deleted from the key store.
    public func erase(conversationId: String, userId: String) async throws {
        cache.withLock { cache in
            cache = cache.filter { $0.key.conversationId != conversationId }
        }
        current.withLock { _ = $0.removeValue(forKey: conversationId) }
        _ = try await keyStore.deleteKeys(conversationId: conversationId, userId: userId)
    }

    private func key(for wrapped: WrappedDataKey) async throws -> SymmetricKey {
        if let cached = cache.withLock({ $0[wrapped.context] }) { return cached }
        let plaintext = try await provider.unwrap(wrapped)
        guard plaintext.count == 32 else { throw EncryptionError.unwrapFailed("data key has the wrong length") }
        let key = SymmetricKey(data: plaintext)
        remember(key, for: wrapped.context)
        return key
    }

    private func remember(_ key: SymmetricKey, for context: DataKeyContext) {
        cache.withLock { cache in
            if cache.count >= cacheLimit { cache.removeAll() }
            cache[context] = key
        }
        current.withLock { current in
            if current.count >= cacheLimit { current.removeAll() }
            if (current[context.conversationId]?.version ?? 0) <= context.version { current[context.conversationId] = context }
        }
    }
}
