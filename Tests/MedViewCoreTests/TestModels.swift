import MedViewCore
import MedViewSafety
import MedViewModels
import MedViewProtocol
import Synchronization
import MedViewTestSupport

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

/// The clinical checks every deployment runs, from the bundled data.
let clinicalSafety: any SafetyPolicy = ClinicalSafetyPolicy(detector: .shared, checker: .shared)
