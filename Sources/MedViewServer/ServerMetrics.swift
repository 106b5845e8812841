import CoreMetrics
import Foundation
import MedViewCore
import Prometheus
import Synchronization

/// The service's measurements (docs/METRICS.md), recorded through swift-metrics into the
/// Prometheus registry that `/metrics` renders (histograms, so that figures add up across tasks)
/// and, with JSON logs, into CloudWatch EMF records (``EMFMetrics``). Holds no user data: labels
/// are transports, results, codes, statuses, categories and providers, never ids or text.
public final class ServerMetrics: ChatObserver {
    /// Where a connection or an answer reaches the patient.
    public enum Transport: String, Sendable, CaseIterable {
        case websocket, sse
    }

    /// How a connection attempt ended (`medview_connection_attempts_total{result}`).
    public enum ConnectionResult: String, Sendable, CaseIterable {
        case accepted
        case authRefused = "auth_refused"
        case limit
        case protocolError = "protocol"
        case originRefused = "origin_refused"
        case upgradeError = "upgrade_error"
    }

    /// Bucket bounds, in seconds, of every latency histogram; 2 s must stay one (alarm 1).
    public static let latencyBuckets: [Double] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 2.5, 3, 5, 10, 30]

    /// The Prometheus registry `/metrics` renders.
    public let registry: PrometheusCollectorRegistry
    /// The swift-metrics factory every measurement goes through (Prometheus, plus EMF when set;
    /// a no-op one when metrics are off). The executable bootstraps `MetricsSystem` with it so
    /// that libraries' measurements (model retries and throttles) land in the same registry.
    public let factory: any MetricsFactory
    /// The CloudWatch EMF writer, when JSON logs are on.
    public let emf: EMFMetrics?
    /// `false` when metrics are off: nothing is recorded.
    public let enabled: Bool
    /// Exact recent samples for `medview bench` (`/metrics/exact`), which reports exact quantiles.
    let exact: ExactLatencies?

    private struct PerTransport {
        var open: CoreMetrics.Meter
        var firstChunk: CoreMetrics.Timer
        var delivery: CoreMetrics.Timer
        var chunks: CoreMetrics.Counter
        var characters: CoreMetrics.Counter
        var attempts: [ConnectionResult: CoreMetrics.Counter]
    }

    private let transports: [Transport: PerTransport]
    private let firstChunkServer: CoreMetrics.Timer
    private let interChunkGap: CoreMetrics.Timer
    private let ended: [MessageStatus: CoreMetrics.Counter]
    private let ready: CoreMetrics.Gauge
    private let unsaved: CoreMetrics.Gauge

    /// - Parameters:
    ///   - enabled: `false` records nothing (`--metrics off`).
    ///   - emf: also writes CloudWatch EMF records.
    public init(enabled: Bool = true, registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry(), emf: EMFMetrics? = nil, exactReservoirSize: Int = 20_000) {
        self.enabled = enabled
        self.registry = registry
        self.emf = enabled ? emf : nil
        let factory: any MetricsFactory
        if enabled {
            var prometheus = PrometheusMetricsFactory(registry: registry)
            prometheus.defaultDurationHistogramBuckets = Self.latencyBuckets.map { Duration.nanoseconds(Int64(($0 * 1e9).rounded())) }
            factory = emf.map { MultiplexMetricsHandler(factories: [prometheus, $0]) } ?? prometheus
            exact = ExactLatencies(limit: exactReservoirSize)
        } else {
            factory = NOOPMetricsHandler.instance
            exact = nil
        }
        self.factory = factory
        var transports: [Transport: PerTransport] = [:]
        for t in Transport.allCases {
            let labels = [("transport", t.rawValue)]
            var attempts: [ConnectionResult: CoreMetrics.Counter] = [:]
            for result in ConnectionResult.allCases {
                attempts[result] = CoreMetrics.Counter(label: "medview_connection_attempts_total", dimensions: labels + [("result", result.rawValue)], factory: factory)
            }
            transports[t] = PerTransport(
                open: CoreMetrics.Meter(label: t == .websocket ? "medview_websocket_connections" : "medview_sse_connections", factory: factory),
                firstChunk: CoreMetrics.Timer(label: "medview_time_to_first_chunk_seconds", dimensions: labels, factory: factory),
                delivery: CoreMetrics.Timer(label: "medview_chunk_delivery_seconds", dimensions: labels, factory: factory),
                chunks: CoreMetrics.Counter(label: "medview_chunks_delivered_total", dimensions: labels, factory: factory),
                characters: CoreMetrics.Counter(label: "medview_characters_delivered_total", dimensions: labels, factory: factory),
                attempts: attempts
            )
        }
        self.transports = transports
        firstChunkServer = CoreMetrics.Timer(label: "medview_first_chunk_server_seconds", factory: factory)
        interChunkGap = CoreMetrics.Timer(label: "medview_inter_chunk_gap_seconds", factory: factory)
        var ended: [MessageStatus: CoreMetrics.Counter] = [:]
        for status in [MessageStatus.complete, .cancelled, .failed] {
            ended[status] = CoreMetrics.Counter(label: "medview_streams_ended_total", dimensions: [("status", status.rawValue)], factory: factory)
        }
        self.ended = ended
        ready = CoreMetrics.Gauge(label: "medview_ready", factory: factory)
        unsaved = CoreMetrics.Gauge(label: "medview_unsaved_answers", factory: factory)
        unsaved.record(0)
    }

    static func nanoseconds(_ d: Duration) -> Int64 {
        d.components.seconds * 1_000_000_000 + d.components.attoseconds / 1_000_000_000
    }

    // MARK: ChatObserver (the engine)

    public func firstChunk(total: Duration, serverAdded: Duration) {
        guard enabled else { return }
        firstChunkServer.recordNanoseconds(Self.nanoseconds(serverAdded))
        exact?.add(.firstChunk, total)
        exact?.add(.firstChunkServer, serverAdded)
    }

    public func chunkPublished(gap: Duration) {
        guard enabled else { return }
        interChunkGap.recordNanoseconds(Self.nanoseconds(gap))
    }

    public func alertPublished(after: Duration) {
        exact?.add(.alert, after)
    }

    public func safetyAlert(category: String) {
        guard enabled else { return }
        CoreMetrics.Counter(label: "medview_safety_alerts_total", dimensions: [("category", Self.bounded(category))], factory: factory).increment()
    }

    public func safetyWarning(category: String) {
        guard enabled else { return }
        CoreMetrics.Counter(label: "medview_safety_warnings_total", dimensions: [("category", Self.bounded(category))], factory: factory).increment()
    }

    public func streamEnded(status: MessageStatus) {
        guard enabled else { return }
        (ended[status] ?? CoreMetrics.Counter(label: "medview_streams_ended_total", dimensions: [("status", status.rawValue)], factory: factory)).increment()
    }

    public func modelCalled(provider: String) {
        guard enabled else { return }
        CoreMetrics.Counter(label: "medview_model_calls_total", dimensions: [("provider", Self.bounded(provider))], factory: factory).increment()
    }

    public func modelFirstDelta(provider: String, after: Duration) {
        guard enabled else { return }
        CoreMetrics.Timer(label: "medview_model_first_delta_seconds", dimensions: [("provider", Self.bounded(provider))], factory: factory).recordNanoseconds(Self.nanoseconds(after))
    }

    public func modelThrottled(provider: String) {
        guard enabled else { return }
        CoreMetrics.Counter(label: "medview_model_throttles_total", dimensions: [("provider", Self.bounded(provider))], factory: factory).increment()
    }

    /// The model triage's second opinion on a message ended with `outcome` (`clear`, `alert`,
    /// `timed_out`, `failed`, `unparsable`; `skipped`, no model call, when the detector had
    /// already alerted).
    public func safetyTriage(provider: String, outcome: String) {
        guard enabled else { return }
        CoreMetrics.Counter(label: "medview_safety_triage_total", dimensions: [("provider", Self.bounded(provider)), ("outcome", Self.bounded(outcome))], factory: factory).increment()
    }

    public func streamError(code: String) {
        error(code)
    }

    public func storeWriteFailed(operation: StoreOperation) {
        guard enabled else { return }
        CoreMetrics.Counter(label: "medview_store_write_failures_total", dimensions: [("operation", operation.rawValue)], factory: factory).increment()
    }

    public func unsavedAnswers(_ count: Int) {
        unsaved.record(count)
    }

    // MARK: The edges (transports)

    /// A chunk was written to the patient's socket or SSE body `latency` after it was published.
    func delivered(chunkOf characters: Int, after latency: Duration, transport: Transport) {
        guard enabled, let t = transports[transport] else { return }
        t.delivery.recordNanoseconds(Self.nanoseconds(latency))
        t.chunks.increment()
        t.characters.increment(by: characters)
        exact?.add(.delivery, latency)
    }

    /// The first chunk of an answer reached the patient `after` the accepted `chat.send`.
    func firstChunkDelivered(after: Duration, transport: Transport) {
        guard enabled else { return }
        transports[transport]?.firstChunk.recordNanoseconds(Self.nanoseconds(after))
    }

    /// A typed error was sent to a client.
    package func error(_ code: String) {
        guard enabled else { return }
        CoreMetrics.Counter(label: "medview_stream_errors_total", dimensions: [("code", Self.bounded(code))], factory: factory).increment()
    }

    /// A WebSocket upgrade or an SSE stream request ended with `result`.
    package func connectionAttempt(_ transport: Transport, _ result: ConnectionResult) {
        guard enabled else { return }
        transports[transport]?.attempts[result]?.increment()
    }

    func connectionOpened(_ transport: Transport) {
        guard enabled else { return }
        transports[transport]?.open.increment()
    }

    func connectionClosed(_ transport: Transport) {
        guard enabled else { return }
        transports[transport]?.open.decrement()
    }

    /// A WebSocket was closed because its client stopped reading (``WebSocketSession/Verdict/stalled``).
    func connectionStalled() {
        guard enabled else { return }
        CoreMetrics.Counter(label: "medview_connections_stalled_total", dimensions: [("transport", Transport.websocket.rawValue)], factory: factory).increment()
    }

    /// Whether `/readyz` answers 200.
    func setReady(_ isReady: Bool) {
        ready.record(isReady ? 1 : 0)
    }

    /// A label value from a bounded vocabulary: lowercase letters, digits, `_`, `-`, `.`, at most 48.
    static func bounded(_ value: String) -> String {
        let cleaned = value.prefix(48).map { c -> Character in
            c.isASCII && (c.isLetter || c.isNumber || c == "_" || c == "-" || c == ".") ? Character(c.lowercased()) : "_"
        }
        return cleaned.isEmpty ? "unknown" : String(cleaned)
    }

    // MARK: Exposition

    /// The Prometheus text exposition of `/metrics`.
    public func render() -> String {
        registry.emitToString()
    }

    /// Exact quantiles of recent samples, for `medview bench` only (summaries do not add up
    /// across tasks, so dashboards read the histograms of ``render()``).
    public func renderExact() -> String {
        exact?.render() ?? ""
    }
}

/// Recent latency samples kept for exact quantiles (the benchmark's figures).
final class ExactLatencies: Sendable {
    enum Kind: Int, CaseIterable {
        case firstChunk, firstChunkServer, alert, delivery

        var name: String {
            switch self {
            case .firstChunk: "medview_stream_first_chunk_seconds"
            case .firstChunkServer: "medview_stream_first_chunk_server_seconds"
            case .alert: "medview_safety_alert_seconds"
            case .delivery: "medview_chunk_delivery_seconds"
            }
        }
    }

    struct Reservoir {
        var samples: [Double] = []
        var next = 0
        var count = 0
        var sum = 0.0

        mutating func add(_ seconds: Double, limit: Int) {
            if samples.count < limit {
                samples.append(seconds)
            } else {
                samples[next] = seconds
                next = (next + 1) % limit
            }
            count += 1
            sum += seconds
        }

        func quantiles(_ qs: [Double]) -> [Double] {
            let sorted = samples.sorted()
            guard !sorted.isEmpty else { return qs.map { _ in 0 } }
            return qs.map { sorted[min(sorted.count - 1, Int((Double(sorted.count) * $0).rounded(.down)))] }
        }
    }

    private let reservoirs: Mutex<[Reservoir]>
    let limit: Int

    init(limit: Int) {
        self.limit = limit
        reservoirs = Mutex(Array(repeating: Reservoir(), count: Kind.allCases.count))
    }

    func add(_ kind: Kind, _ d: Duration) {
        let seconds = Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
        reservoirs.withLock { $0[kind.rawValue].add(seconds, limit: limit) }
    }

    func render() -> String {
        let all = reservoirs.withLock { $0 }
        var out = ""
        for kind in Kind.allCases {
            let r = all[kind.rawValue]
            out += "# TYPE \(kind.name) summary\n"
            for (quantile, value) in zip(["0.5", "0.9", "0.99"], r.quantiles([0.5, 0.9, 0.99])) {
                out += "\(kind.name){quantile=\"\(quantile)\"} \(value)\n"
            }
            out += "\(kind.name)_sum \(r.sum)\n\(kind.name)_count \(r.count)\n"
        }
        return out
    }
}
