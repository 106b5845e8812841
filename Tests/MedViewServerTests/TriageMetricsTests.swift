import Logging
import MedViewCore
import MedViewProtocol
@testable import MedViewServer
import Testing

/// A cloud-looking model whose every reply is one fixed word (the triage's category answer).
private struct OneWordModel: ChatModel {
    let descriptor = ModelDescriptor(provider: "anthropic", id: "one-word", demo: false)
    let word: String
    func stream(_ request: ModelRequest) -> AsyncThrowingStream<ModelEvent, any Error> {
        AsyncThrowingStream { continuation in
            continuation.yield(.delta(word))
            continuation.finish()
        }
    }
}

@Suite(.timeLimit(.minutes(1))) struct TriageMetricsTests {
    @Test("the model triage's checks are counted by provider and outcome on /metrics, never with text")
    func triageOutcomesCounted() async throws {
        var configuration = ServerConfiguration()
        configuration.safetyTriage = true
        // This test counts outcomes, not time: a loaded CI machine once ran past the 1.5 s budget.
        configuration.safetyTriageBudget = .seconds(30)
        let metrics = ServerMetrics()
        let alerting = try #require(modelTriage(configuration: configuration, model: OneWordModel(word: "cardiac"), metrics: metrics, logger: Logger(label: "test")))
        let clear = try #require(modelTriage(configuration: configuration, model: OneWordModel(word: "none"), metrics: metrics, logger: Logger(label: "test")))
        let message = "my chest feels tight since this morning"
        guard case .alert = await alerting.triage(message, deterministic: nil) else {
            Issue.record("a `cardiac` reply is an alert")
            return
        }
        #expect(await clear.triage(message, deterministic: nil) == .clear)
        #expect(await clear.triage(message, deterministic: nil) == .clear)
        let text = metrics.render()
        #expect(text.contains(#"medview_safety_triage_total{provider="anthropic",outcome="alert"} 1"#))
        #expect(text.contains(#"medview_safety_triage_total{provider="anthropic",outcome="clear"} 2"#))
        #expect(!text.contains("chest"))
        // The scripted and local models get no triage, so nothing to count.
        #expect(modelTriage(configuration: configuration, model: ScriptedModelStandIn(), metrics: metrics, logger: Logger(label: "test")) == nil)
    }
}

private struct ScriptedModelStandIn: ChatModel {
    let descriptor = ModelDescriptor(provider: "scripted", id: "s", demo: true)
    func stream(_ request: ModelRequest) -> AsyncThrowingStream<ModelEvent, any Error> {
        AsyncThrowingStream { $0.finish() }
    }
}
