import Foundation

/// The bundled safety data (``EmergencyDetector/shared``, ``MedicationChecker/shared``), loaded on
/// a thread of its own.
///
/// Not on Swift's few pool threads: a load takes seconds of CPU in a debug build, and every caller
/// that reaches the data while it loads waits for it (a static's initialiser runs once, and others
/// block until it ends). Callers of ``load()`` wait suspended instead, so timers and sockets
/// elsewhere in the process keep running.
public enum BundledSafetyData {
    /// The one load of the process, started by the first caller of ``load()``.
    private static let loading = Task<Void, Never> {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let thread = Thread {
                _ = EmergencyDetector.shared
                _ = MedicationChecker.shared
                continuation.resume()
            }
            thread.name = "medview-safety-data"
            thread.start()
        }
    }

    /// Returns once the bundled data is loaded (at once after the first load).
    public static func load() async {
        await loading.value
    }
}
