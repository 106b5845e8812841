import Foundation
import MedViewCore
@testable import MedViewServer
import Synchronization
import Testing

@Suite struct VerifiedTokenCacheTests {
    @Test func aVerifiedTokenIsRememberedUntilItExpiresAndARefusedOneIsNot() async throws {
        let clock = Mutex(Date(timeIntervalSince1970: 1_800_000_000))
        let cache = VerifiedTokenCache(now: { clock.withLock { $0 } })
        let identity = VerifiedIdentity(userId: "alice", expiresAt: Date(timeIntervalSince1970: 1_800_000_060), issuer: "test")
        #expect(cache.identity(for: "token-a") == nil)
        cache.remember("token-a", as: identity)
        #expect(cache.identity(for: "token-a") == identity)
        #expect(cache.identity(for: "token-b") == nil)
        clock.withLock { $0 = $0.addingTimeInterval(61) }
        #expect(cache.identity(for: "token-a") == nil, "an expired token must be verified again (and refused)")
    }

    @Test func theDevelopmentIssuerStillRefusesAnExpiredTokenItOnceAccepted() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("vtc-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let issuer = try await DevTokenIssuer.load(dataDirectory: directory)
        // Long enough that a busy machine still verifies it twice in time.
        let token = try await issuer.token(userId: "bob", lifetime: .seconds(10))
        #expect(try await issuer.verify(token).userId == "bob")
        #expect(try await issuer.verify(token).userId == "bob")
        // Then, once it expired (exp has whole seconds), it is refused.
        // The last try always comes after the deadline was checked: a sleep that a busy machine
        // stretches past it is followed by one more verification.
        let deadline = ContinuousClock.now + .seconds(60)
        var refusal: AuthError?
        while true {
            do throws(AuthError) {
                _ = try await issuer.verify(token)
            } catch {
                refusal = error
                break
            }
            guard ContinuousClock.now < deadline else { break }
            try await Task.sleep(for: .milliseconds(250))
        }
        #expect(refusal == .expired)
    }
}
