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
