import Foundation
import JWTKit

/// The time claims every verifier checks besides `exp`, with a small allowance for clocks that
/// disagree: a token is refused when its `nbf` (not before) is later than now plus
/// ``allowedSkew``, or when its `iat` (issued at) is: a token from the future was minted by a
/// wrong clock or a forger, and accepting it would stretch its lifetime.
enum TokenTimeChecks {
    /// How far ahead of this server's clock `nbf` and `iat` may be.
    static let allowedSkew: TimeInterval = 60

    static func verify(notBefore: NotBeforeClaim?, issuedAt: IssuedAtClaim?, now: Date = Date()) throws {
        let latest = now.addingTimeInterval(allowedSkew)
        if let notBefore, notBefore.value > latest {
            throw JWTError.claimVerificationFailure(failedClaim: notBefore, reason: "not valid yet")
        }
        if let issuedAt, issuedAt.value > latest {
            throw JWTError.claimVerificationFailure(failedClaim: issuedAt, reason: "issued in the future")
        }
    }
}
