import Crypto
import Foundation
import MedViewCore
import Synchronization

/// Remembers tokens whose signature and claims were verified, so that a patient's next request
/// with the same token costs a hash instead of a signature check (an ECDSA or RSA verification
/// on every message, the largest part of authentication's cost).
///
/// - Keyed by the token's SHA-256, so the cache never holds a token.
/// - A remembered identity is used only while its token is unexpired, and for at most ``lifetime``
///   after it was verified (a signing key withdrawn from the issuer's key set stops being honoured
///   within that time, as with the key set's own refresh).
/// - Bounded: past ``capacity`` entries the cache is emptied and fills again.
/// - Only successes are remembered: a refused token is checked again each time.
final class VerifiedTokenCache: Sendable {
    static let capacity = 10_000
    static let lifetime: Duration = .seconds(300)

    private struct Entry {
        var identity: VerifiedIdentity
        var until: ContinuousClock.Instant
    }

    private let entries = Mutex<[SHA256Digest: Entry]>([:])
    private let now: @Sendable () -> Date

    init(now: @escaping @Sendable () -> Date = Date.init) {
        self.now = now
    }

    /// The identity remembered for `token`, if it is still usable.
    func identity(for token: String) -> VerifiedIdentity? {
        let key = SHA256.hash(data: Data(token.utf8))
        let date = now()
        return entries.withLock { entries in
            guard let entry = entries[key] else { return nil }
            guard entry.identity.expiresAt > date, ContinuousClock.now < entry.until else {
                entries[key] = nil
                return nil
            }
            return entry.identity
        }
    }

    /// Remembers that `token` was verified as `identity`.
    func remember(_ token: String, as identity: VerifiedIdentity) {
        let key = SHA256.hash(data: Data(token.utf8))
        entries.withLock { entries in
            if entries.count >= Self.capacity { entries.removeAll(keepingCapacity: true) }
            entries[key] = Entry(identity: identity, until: .now + Self.lifetime)
        }
    }
}
