import CoreMetrics
import MedViewCore
import MedViewProtocol

/// A ``ChatModel`` that counts its calls, times its first delta and counts calls that end
/// throttled, by provider (docs/METRICS.md). Throttled attempts that the HTTP models retry are
/// counted where they retry, so each throttled attempt counts once.
struct MeteredModel: ChatModel {
    let base: any ChatModel
    private let calls: Counter
    private let throttles: Counter
    private let firstDelta: CoreMetrics.Timer

    init(_ base: any ChatModel, factory: any MetricsFactory) {
        self.base = base
        let provider = [("provider", ServerMetrics.bounded(base.descriptor.provider))]
        calls = Counter(label: "medview_model_calls_total", dimensions: provider, factory: factory)
        throttles = Counter(label: "medview_model_throttles_total", dimensions: provider, factory: factory)
        firstDelta = CoreMetrics.Timer(label: "medview_model_first_delta_seconds", dimensions: provider, factory: factory)
    }

    var descriptor: ModelDescriptor { base.descriptor }

    func stream(_ request: ModelRequest) -> AsyncThrowingStream<ModelEvent, any Error> {
        calls.increment()
        let started = ContinuousClock.now
        let upstream = base.stream(request)
        let firstDelta = self.firstDelta
        let throttles = self.throttles
        return AsyncThrowingStream { continuation in
            let task = Task {
                var sawDelta = false
                do {
                    for try await event in upstream {
                        if !sawDelta, case .delta = event {
                            sawDelta = true
                            firstDelta.recordNanoseconds(ServerMetrics.nanoseconds(ContinuousClock.now - started))
                        }
                        continuation.yield(event)
                    }
                    continuation.finish()
                } catch {
                    if let modelError = error as? ModelError, modelError.kind == .throttled { throttles.increment() }
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }
}
