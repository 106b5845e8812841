import CoreMetrics
import Foundation
import MedViewCore

/// A ``KeyProvider`` that times each call (`medview_key_provider_seconds{provider, operation}`,
/// docs/METRICS.md) through the process's `MetricsSystem`; keys and contexts are never labels.
struct MeteredKeyProvider: KeyProvider {
    let base: any KeyProvider
    private let generate: CoreMetrics.Timer
    private let unwrapTimer: CoreMetrics.Timer
    private let rewrapTimer: CoreMetrics.Timer

    init(_ base: any KeyProvider) {
        self.base = base
        func timer(_ operation: String) -> CoreMetrics.Timer {
            CoreMetrics.Timer(label: "medview_key_provider_seconds", dimensions: [("provider", base.name), ("operation", operation)])
        }
        generate = timer("generate")
        unwrapTimer = timer("unwrap")
        rewrapTimer = timer("rewrap")
    }

    var name: String { base.name }
    var currentMasterKeyId: String { base.currentMasterKeyId }

    func generateDataKey(for context: DataKeyContext) async throws -> GeneratedDataKey {
        let started = ContinuousClock.now
        defer { generate.recordNanoseconds(Self.nanoseconds(.now - started)) }
        return try await base.generateDataKey(for: context)
    }

    func unwrap(_ key: WrappedDataKey) async throws -> Data {
        let started = ContinuousClock.now
        defer { unwrapTimer.recordNanoseconds(Self.nanoseconds(.now - started)) }
        return try await base.unwrap(key)
    }

    func rewrap(_ key: WrappedDataKey) async throws -> WrappedDataKey {
        let started = ContinuousClock.now
        defer { rewrapTimer.recordNanoseconds(Self.nanoseconds(.now - started)) }
        return try await base.rewrap(key)
    }

    static func nanoseconds(_ d: Duration) -> Int64 {
        d.components.seconds * 1_000_000_000 + d.components.attoseconds / 1_000_000_000
    }
}
