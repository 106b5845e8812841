import CoreMetrics
import Foundation
import ServiceLifecycle
import Synchronization

/// A swift-metrics backend that writes CloudWatch Embedded Metric Format records: the metrics
/// docs/METRICS.md names under their CloudWatch names, as JSON lines that the `awslogs` driver
/// turns into CloudWatch metrics.
///
/// Measurements are gathered in memory and written every ``interval`` (one record per metric and
/// dimension values, latencies as an array of at most 100 values); gauges are written every sixth
/// time (once a minute at the default interval). Metrics without a CloudWatch name are ignored.
/// Dimension values are the bounded label values of the Prometheus series: never ids or text.
public final class EMFMetrics: MetricsFactory, Service, Sendable {
    /// One CloudWatch metric with its dimension values.
    struct Key: Hashable, Sendable {
        var name: String
        var unit: String
        /// Dimension values beyond `Service`, as (name, value), in order.
        var dimensions: [Dimension]
        /// Dimension sets, each beyond `Service` (an empty set is `Service` alone).
        var sets: [[String]]
    }

    struct Dimension: Hashable, Sendable {
        var name: String
        var value: String
    }

    private struct State {
        var counts: [Key: Int64] = [:]
        var values: [Key: [Double]] = [:]
        var gauges: [Key: Double] = [:]
        var flushes = 0
    }

    public let namespace: String
    public let service: String
    public let interval: Duration
    private let write: @Sendable (String) -> Void
    private let state = Mutex(State())

    /// - Parameter write: receives each record, one JSON object without a newline.
    public init(namespace: String, service: String, interval: Duration, write: @escaping @Sendable (String) -> Void) {
        self.namespace = namespace
        self.service = service
        self.interval = interval
        self.write = write
    }

    // MARK: Recording

    func add(_ keys: [Key], count: Int64) {
        state.withLock { s in
            for key in keys { s.counts[key, default: 0] += count }
        }
    }

    func add(_ key: Key, milliseconds: Double) {
        state.withLock { $0.values[key, default: []].append(milliseconds) }
    }

    func set(_ key: Key, gauge: (Double) -> Double) {
        state.withLock { s in s.gauges[key] = gauge(s.gauges[key] ?? 0) }
    }

    // MARK: Writing

    /// Writes what was gathered since the last flush; gauges every sixth flush, or when `gauges`.
    public func flush(gauges forceGauges: Bool = false) {
        let (counts, values, gauges) = state.withLock { s -> ([Key: Int64], [Key: [Double]], [Key: Double]) in
            s.flushes += 1
            let counts = s.counts
            let values = s.values
            s.counts.removeAll(keepingCapacity: true)
            s.values.removeAll(keepingCapacity: true)
            let gauges = (forceGauges || s.flushes % 6 == 1) ? s.gauges : [:]
            return (counts, values, gauges)
        }
        let timestamp = Int64(Date().timeIntervalSince1970 * 1000)
        for (key, count) in counts.sorted(by: { $0.key.name < $1.key.name }) where count != 0 {
            write(record(key, value: count, timestamp: timestamp))
        }
        for (key, list) in values.sorted(by: { $0.key.name < $1.key.name }) {
            var start = 0
            while start < list.count {
                let end = min(list.count, start + 100)
                write(record(key, value: Array(list[start..<end]), timestamp: timestamp))
                start = end
            }
        }
        for (key, value) in gauges.sorted(by: { $0.key.dimensions.map(\.value).joined() < $1.key.dimensions.map(\.value).joined() }) {
            write(record(key, value: value, timestamp: timestamp))
        }
    }

    func record(_ key: Key, value: Any, timestamp: Int64) -> String {
        var object: [String: Any] = [
            "_aws": [
                "Timestamp": timestamp,
                "CloudWatchMetrics": [[
                    "Namespace": namespace,
                    "Dimensions": key.sets.map { ["Service"] + $0 },
                    "Metrics": [["Name": key.name, "Unit": key.unit]],
                ] as [String: Any]],
            ] as [String: Any],
            "Service": service,
            key.name: value,
        ]
        for dimension in key.dimensions { object[dimension.name] = dimension.value }
        guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }

    /// Writes every interval until graceful shutdown, then once more with the gauges.
    public func run() async throws {
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: self.interval) }
            flush()
        }
        flush(gauges: true)
    }

    // MARK: The contract (docs/METRICS.md)

    private static let count = "Count"
    private static let milliseconds = "Milliseconds"

    /// The CloudWatch metrics a counter of `label` adds to.
    static func counterKeys(label: String, dimensions: [(String, String)]) -> [Key] {
        let d = Dictionary(dimensions, uniquingKeysWith: { $1 })
        func key(_ name: String, _ dims: [(String, String)] = [], sets: [[String]] = [[]]) -> Key {
            Key(name: name, unit: count, dimensions: dims.map { Dimension(name: $0.0, value: $0.1) }, sets: sets)
        }
        switch label {
        case "medview_connection_attempts_total":
            var keys = [key("ConnectionAttempts")]
            if let result = d["result"], result != "accepted" {
                keys.append(key("ConnectionFailures", [("Reason", result)], sets: [[], ["Reason"]]))
            }
            return keys
        case "medview_chunks_delivered_total": return [key("ChunksDelivered")]
        case "medview_characters_delivered_total": return [key("CharactersDelivered")]
        case "medview_streams_ended_total": return [key("StreamsEnded", [("Status", d["status"] ?? "")], sets: [["Status"]])]
        case "medview_stream_errors_total": return [key("StreamErrors", [("Code", d["code"] ?? "")], sets: [[], ["Code"]])]
        case "medview_model_calls_total": return [key("ModelCalls", [("Provider", d["provider"] ?? "")], sets: [["Provider"]])]
        case "medview_model_throttles_total": return [key("ModelThrottles", [("Provider", d["provider"] ?? "")], sets: [["Provider"]])]
        case "medview_model_retries_total": return [key("ModelRetries", [("Provider", d["provider"] ?? "")], sets: [["Provider"]])]
        case "medview_safety_alerts_total": return [key("SafetyAlerts", [("Category", d["category"] ?? "")], sets: [["Category"]])]
        case "medview_safety_warnings_total": return [key("SafetyWarnings", [("Category", d["category"] ?? "")], sets: [["Category"]])]
        default: return []
        }
    }

    /// The CloudWatch metric a latency histogram of `label` records into, in milliseconds.
    static func timerKey(label: String, dimensions: [(String, String)]) -> Key? {
        let d = Dictionary(dimensions, uniquingKeysWith: { $1 })
        func key(_ name: String, _ dims: [(String, String)] = [], sets: [[String]] = [[]]) -> Key {
            Key(name: name, unit: milliseconds, dimensions: dims.map { Dimension(name: $0.0, value: $0.1) }, sets: sets)
        }
        switch label {
        case "medview_time_to_first_chunk_seconds": return key("TimeToFirstChunkMs")
        case "medview_first_chunk_server_seconds": return key("FirstChunkLatencyMs")
        case "medview_inter_chunk_gap_seconds": return key("InterChunkGapMs")
        case "medview_chunk_delivery_seconds": return key("ChunkDeliveryLatencyMs")
        case "medview_model_first_delta_seconds": return key("ModelFirstDeltaMs", [("Provider", d["provider"] ?? "")], sets: [["Provider"]])
        default: return nil
        }
    }

    /// The CloudWatch gauge a gauge of `label` is written as.
    static func gaugeKey(label: String) -> Key? {
        switch label {
        case "medview_websocket_connections": Key(name: "ConnectionsOpen", unit: count, dimensions: [Dimension(name: "Transport", value: "websocket")], sets: [["Transport"]])
        case "medview_sse_connections": Key(name: "ConnectionsOpen", unit: count, dimensions: [Dimension(name: "Transport", value: "sse")], sets: [["Transport"]])
        default: nil
        }
    }

    // MARK: MetricsFactory

    public func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        let keys = Self.counterKeys(label: label, dimensions: dimensions)
        return keys.isEmpty ? NOOPMetricsHandler.instance : CounterSink(exporter: self, keys: keys)
    }

    public func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        NOOPMetricsHandler.instance
    }

    public func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
        guard let key = Self.gaugeKey(label: label) else { return NOOPMetricsHandler.instance }
        return GaugeSink(exporter: self, key: key)
    }

    public func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        guard let key = Self.timerKey(label: label, dimensions: dimensions) else { return NOOPMetricsHandler.instance }
        return TimerSink(exporter: self, key: key)
    }

    public func destroyCounter(_ handler: any CounterHandler) {}
    public func destroyRecorder(_ handler: any RecorderHandler) {}
    public func destroyMeter(_ handler: any MeterHandler) {}
    public func destroyTimer(_ handler: any TimerHandler) {}

    final class CounterSink: CounterHandler {
        let exporter: EMFMetrics
        let keys: [Key]
        init(exporter: EMFMetrics, keys: [Key]) { self.exporter = exporter; self.keys = keys }
        func increment(by amount: Int64) { exporter.add(keys, count: amount) }
        func reset() {}
    }

    final class TimerSink: TimerHandler {
        let exporter: EMFMetrics
        let key: Key
        init(exporter: EMFMetrics, key: Key) { self.exporter = exporter; self.key = key }
        func recordNanoseconds(_ duration: Int64) { exporter.add(key, milliseconds: Double(duration) / 1_000_000) }
    }

    final class GaugeSink: MeterHandler {
        let exporter: EMFMetrics
        let key: Key
        init(exporter: EMFMetrics, key: Key) { self.exporter = exporter; self.key = key }
        func set(_ value: Int64) { exporter.set(key) { _ in Double(value) } }
        func set(_ value: Double) { exporter.set(key) { _ in value } }
        func increment(by amount: Double) { exporter.set(key) { $0 + amount } }
        func decrement(by amount: Double) { exporter.set(key) { $0 - amount } }
    }
}
