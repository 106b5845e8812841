import Crypto
import Foundation
import MedViewCore

/// Encrypts one stored field with AES-256-GCM, bound to where it is stored.
///
/// Envelope (stored as text, so every store keeps its schema): `ev1:<key version>:<base64 of
/// nonce (12) ‖ ciphertext ‖ tag (16)>`. The additional authenticated data names the user, the
/// conversation, the record (message id, conversation id, or stream id and seq), the field and
/// the key version, each length-prefixed; so a ciphertext moved to another row, user,
/// conversation or field fails with ``EncryptionError/authenticationFailed``.
///
/// The empty string is stored as itself (an assistant message still streaming has no text, and
/// stores write that empty text themselves): it carries nothing to protect.
public enum FieldCipher {
    /// What a ciphertext is bound to.
    public struct Binding: Sendable, Hashable {
        public var userId: String
        public var conversationId: String
        public var recordId: String
        public var field: Field

        public init(userId: String, conversationId: String, recordId: String, field: Field) {
            self.userId = userId
            self.conversationId = conversationId
            self.recordId = recordId
            self.field = field
        }
    }

    /// Every encrypted field.
    public enum Field: String, Sendable {
        case conversationTitle = "conversation.title"
        case messageText = "message.text"
        case streamEvent = "stream_event.json"
        case safetyState = "conversation.safety_state"
    }

    static let prefix = "ev1:"

    /// `plaintext` sealed under `key` (version `version`), bound to `binding`.
    public static func seal(_ plaintext: String, key: SymmetricKey, version: Int, binding: Binding) throws -> String {
        if plaintext.isEmpty { return "" }
        do {
            let box = try AES.GCM.seal(Data(plaintext.utf8), using: key, nonce: freshNonce(), authenticating: aad(binding, version: version))
            guard let combined = box.combined else { throw EncryptionError.malformedEnvelope }
            return prefix + String(version) + ":" + combined.base64EncodedString()
        } catch let error as EncryptionError {
            throw error
        } catch {
            throw EncryptionError.providerUnavailable("AES-GCM seal failed")
        }
    }

    /// A random 96-bit nonce, new for every seal, in one system call (``SystemRandom``; the
    /// library's own drew it in two). Random nonces keep a data key well inside AES-GCM's limit:
    /// a key seals one conversation's fields, far fewer than 2^32.
    static func freshNonce() throws -> AES.GCM.Nonce {
        try AES.GCM.Nonce(data: SystemRandom.bytes(12))
    }

    /// The key version a stored value names.
    /// - Throws: ``EncryptionError/malformedEnvelope`` if `stored` is not an envelope.
    public static func version(of stored: String) throws -> Int {
        try parse(stored).version
    }

    /// The plaintext of `stored`, which must have been sealed for `binding` under `key`.
    /// - Throws: ``EncryptionError/authenticationFailed`` on any alteration or other binding;
    ///   ``EncryptionError/malformedEnvelope`` if it is not an envelope.
    public static func open(_ stored: String, key: SymmetricKey, binding: Binding) throws -> String {
        if stored.isEmpty { return "" }
        let (version, bytes) = try parse(stored)
        guard bytes.count >= 28 else { throw EncryptionError.malformedEnvelope }
        let plaintext: Data
        do {
            let box = try AES.GCM.SealedBox(combined: bytes)
            plaintext = try AES.GCM.open(box, using: key, authenticating: aad(binding, version: version))
        } catch {
            throw EncryptionError.authenticationFailed
        }
        guard let text = plaintext.withUnsafeBytes({ String(validUTF8: $0.bindMemory(to: UInt8.self)) }) else { throw EncryptionError.authenticationFailed }
        return text
    }

    private static func parse(_ stored: String) throws -> (version: Int, bytes: Data) {
        guard stored.hasPrefix(prefix) else { throw EncryptionError.malformedEnvelope }
        let rest = stored.dropFirst(prefix.count)
        guard let colon = rest.firstIndex(of: ":"), let version = Int(rest[..<colon]), version > 0,
              let bytes = Data(base64Encoded: String(rest[rest.index(after: colon)...])) else {
            throw EncryptionError.malformedEnvelope
        }
        return (version, bytes)
    }

    static func aad(_ binding: Binding, version: Int) -> [UInt8] {
        // One array sized once (every field of every stored message is sealed and opened with
        // one: built with `Data` appends it was a third of the cipher's time).
        let parts = [binding.userId, binding.conversationId, binding.recordId, binding.field.rawValue, String(version)]
        var out: [UInt8] = []
        out.reserveCapacity(16 + parts.reduce(0) { $0 + 4 + $1.utf8.count })
        out.append(contentsOf: "medview.field.v1".utf8)
        for part in parts {
            let count = UInt32(part.utf8.count)
            out.append(UInt8(truncatingIfNeeded: count >> 24))
            out.append(UInt8(truncatingIfNeeded: count >> 16))
            out.append(UInt8(truncatingIfNeeded: count >> 8))
            out.append(UInt8(truncatingIfNeeded: count))
            out.append(contentsOf: part.utf8)
        }
        return out
    }
}
