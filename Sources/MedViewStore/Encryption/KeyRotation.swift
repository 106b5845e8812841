import MedViewCore

/// Re-wraps every stored data key under the provider's current master key, without touching
/// any ciphertext: messages stay as they are, and the data keys themselves do not change.
public enum KeyRotation {
    /// What a rotation did.
    public struct Report: Sendable, Equatable {
        /// Keys re-wrapped under the current master key.
        public var rewrapped: Int
        /// Keys that changed under us (erased, or re-wrapped by another process) and were skipped.
        public var skipped: Int

        public init(rewrapped: Int, skipped: Int) {
            self.rewrapped = rewrapped
            self.skipped = skipped
        }
    }

    /// Re-wraps, in batches of `batchSize`, each key in `keyStore` not wrapped by
    /// `provider.currentMasterKeyId`.
    /// - Throws: ``EncryptionError`` if a key cannot be unwrapped (its master key is gone); keys
    ///   re-wrapped before that stay re-wrapped, and a second run continues.
    public static func rotate(keyStore: any DataKeyStore, provider: any KeyProvider, batchSize: Int = 100) async throws -> Report {
        var report = Report(rewrapped: 0, skipped: 0)
        var seen = Set<DataKeyContext>()
        while true {
            let batch = try await keyStore.keys(notWrappedBy: provider.currentMasterKeyId, limit: batchSize + seen.count)
                .filter { !seen.contains($0.context) }
            if batch.isEmpty { return report }
            for key in batch {
                seen.insert(key.context)
                let rewrapped = try await provider.rewrap(key)
                if try await keyStore.replaceWrapping(rewrapped, previousMasterKeyId: key.masterKeyId) {
                    report.rewrapped += 1
                } else {
                    report.skipped += 1
                }
            }
        }
    }
}
