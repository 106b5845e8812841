import Foundation
import MedViewCore
@testable import MedViewPostgres
import Testing

/// `/readyz` must answer even when the database goes silent: the health check's deadline does not
/// wait for a check that ignores cancellation (the CI failure of stop 17: a readiness probe that
/// hung for more than 30 seconds after the database connection was cut).
@Suite struct PostgresHealthDeadlineTests {
    /// Work that ignores cancellation and takes `seconds`.
    static func stubborn(_ seconds: Double) -> @Sendable () async throws -> Void {
        {
            let end = ContinuousClock.now + .seconds(seconds)
            while ContinuousClock.now < end {
                try? await Task.sleep(for: .milliseconds(20))
            }
        }
    }

    @Test func aCheckThatIgnoresCancellationStillEndsAtTheDeadline() async {
        let start = ContinuousClock.now
        await #expect(throws: StoreError.self) {
            try await PostgresConversationStore.withinDeadline(.milliseconds(200), Self.stubborn(3))
        }
        #expect(ContinuousClock.now - start < .seconds(2))
    }

    @Test func aCheckThatFinishesInTimeGivesItsOwnOutcome() async throws {
        try await PostgresConversationStore.withinDeadline(.seconds(5)) {}
        struct Refused: Error {}
        await #expect(throws: Refused.self) {
            try await PostgresConversationStore.withinDeadline(.seconds(5)) { throw Refused() }
        }
    }
}
