import MedViewCore
import MedViewSafety
import MedViewModels
import MedViewProtocol
import Synchronization
import MedViewTestSupport
import Testing

/// Collects a stream's events from `after` to the end.
func collect(_ stream: ResponseStream, after: Int = 0) async -> [ServerEvent] {
    var out: [ServerEvent] = []
    for await e in stream.subscribe(after: after) { out.append(e) }
    return out
}

func chunkText(_ events: [ServerEvent]) -> String {
    events.compactMap { if case .streamChunk(let c) = $0 { c.text } else { nil } }.joined()
}

/// Polls until `condition` holds (for store writes that follow the terminal event).
func eventually(_ condition: () async throws -> Bool) async throws -> Bool {
    for _ in 0..<200 {
        if try await condition() { return true }
        try await Task.sleep(for: .milliseconds(10))
    }
    return false
}

/// The clinical checks every deployment runs, from the bundled data. A suite that uses it (or
/// the bundled detector or checker) carries ``BundledSafetyDataTrait``.
let clinicalSafety: any SafetyPolicy = ClinicalSafetyPolicy(detector: .shared, checker: .shared)

/// Loads the bundled safety data before each test of the suite that carries it, on a thread of its
/// own (``BundledSafetyData/load()``). A test that loaded it on Swift's pool would hold one of its
/// few threads for the seconds a debug build takes, and other suites in the process (with their
/// own response limits) would stall meanwhile.
struct BundledSafetyDataTrait: SuiteTrait, TestTrait, TestScoping {
    var isRecursive: Bool { true }

    func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        await BundledSafetyData.load()
        try await function()
    }
}

extension Trait where Self == BundledSafetyDataTrait {
    /// The bundled safety data, loaded off Swift's pool before the test runs.
    static var bundledSafetyData: Self { Self() }
}
