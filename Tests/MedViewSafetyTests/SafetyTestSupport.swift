import Foundation
import MedViewSafety

/// The bundled rules without the learned reader, built once for the whole test process.
///
/// Building a detector compiles every phrase list: seconds of CPU in a debug build. Swift Testing
/// makes a new suite value for every test case (each argument of a parameterised test), so a
/// detector kept as a suite's stored property was built dozens of times, on the Swift concurrency
/// pool, which held up every other suite's timers and sockets for about two minutes.
enum SharedDetectors {
    static let rulesOnly: EmergencyDetector = {
        do {
            return try EmergencyDetector.rulesOnly()
        } catch {
            fatalError("the bundled emergency rules do not load: \(error)")
        }
    }()
}

/// Runs `work` on a new thread and returns its result: for seconds of CPU (building a detector,
/// an evaluation), which would otherwise hold a thread of the Swift concurrency pool that every
/// other suite's timers and sockets need.
func onOwnThread<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread { continuation.resume(with: Result { try work() }) }
        thread.stackSize = 8 << 20
        thread.start()
    }
}
