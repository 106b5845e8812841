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

    /// Every sink made, by metric label and dimensions, so that handlers for the same series share
    /// one; each sink gathers its own measurements, so recording touches no shared table.
    private struct Sinks {
        var counters: [String: CounterSink] = [:]
        var timers: [String: TimerSink] = [:]
        var gauges: [String: GaugeSink] = [:]
        var flushes = 0
    }

    public let namespace: String
    public let service: String
    public let interval: Duration
    private let write: @Sendable (String) -> Void
    private let sinks = Mutex(Sinks())

    /// - Parameter write: receives each record, one JSON object without a newline.
    public init(namespace: String, service: String, interval: Duration, write: @escaping @Sendable (String) -> Void) {
        self.namespace = namespace
        self.service = service
        self.interval = interval
        self.write = write
    }

    static func seriesKey(_ label: String, _ dimensions: [(String, String)]) -> String {
        ([label] + dimensions.map { "\($0.0)=\($0.1)" }).joined(separator: "\u{1F}")
    }

    // MARK: Writing

    /// Writes what was gathered since the last flush; gauges every sixth flush, or when `gauges`.
    public func flush(gauges forceGauges: Bool = false) {
        let (counters, timers, gauges, withGauges) = sinks.withLock { s in
            s.flushes += 1
            return (Array(s.counters.values), Array(s.timers.values), Array(s.gauges.values), forceGauges || s.flushes % 6 == 1)
        }
        var counts: [Key: Int64] = [:]
        for sink in counters {
            let n = sink.take()
            guard n != 0 else { continue }
            for key in sink.keys { counts[key, default: 0] += n }
        }
        var values: [Key: [Double]] = [:]
        for sink in timers {
            let taken = sink.take()
            if !taken.isEmpty { values[sink.key, default: []] += taken }
        }
        var gaugeValues: [Key: Double] = [:]
        if withGauges {
            for sink in gauges { gaugeValues[sink.key, default: 0] += sink.value }
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
        for (key, value) in gaugeValues.sorted(by: { $0.key.dimensions.map(\.value).joined() < $1.key.dimensions.map(\.value).joined() }) {
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
        guard !keys.isEmpty else { return NOOPMetricsHandler.instance }
        let series = Self.seriesKey(label, dimensions)
        return sinks.withLock { s in
            if let sink = s.counters[series] { return sink }
            let sink = CounterSink(keys: keys)
            s.counters[series] = sink
            return sink
        }
    }

    public func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        NOOPMetricsHandler.instance
    }

    public func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
        guard let key = Self.gaugeKey(label: label) else { return NOOPMetricsHandler.instance }
        let series = Self.seriesKey(label, dimensions)
        return sinks.withLock { s in
            if let sink = s.gauges[series] { return sink }
            let sink = GaugeSink(key: key)
            s.gauges[series] = sink
            return sink
        }
    }

    public func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        guard let key = Self.timerKey(label: label, dimensions: dimensions) else { return NOOPMetricsHandler.instance }
        let series = Self.seriesKey(label, dimensions)
        return sinks.withLock { s in
            if let sink = s.timers[series] { return sink }
            let sink = TimerSink(key: key)
            s.timers[series] = sink
            return sink
        }
    }

    public func destroyCounter(_ handler: any CounterHandler) {}
    public func destroyRecorder(_ handler: any RecorderHandler) {}
    public func destroyMeter(_ handler: any MeterHandler) {}
    public func destroyTimer(_ handler: any TimerHandler) {}

    /// Counts since the last flush (lock-free).
    final class CounterSink: CounterHandler {
        let keys: [Key]
        private let count = Atomic<Int64>(0)
        init(keys: [Key]) { self.keys = keys }
        func increment(by amount: Int64) { count.add(amount, ordering: .relaxed) }
        func reset() { _ = count.exchange(0, ordering: .relaxed) }
        func take() -> Int64 { count.exchange(0, ordering: .relaxed) }
    }

    /// Latencies since the last flush, in milliseconds.
    final class TimerSink: TimerHandler {
        let key: Key
        private let values = Mutex<[Double]>([])
        init(key: Key) { self.key = key }
        func recordNanoseconds(_ duration: Int64) {
            let ms = Double(duration) / 1_000_000
            values.withLock { $0.append(ms) }
        }
        func take() -> [Double] { values.withLock { v in defer { v = [] }; return v } }
    }

    /// A current value.
    final class GaugeSink: MeterHandler {
        let key: Key
        private let current = Mutex<Double>(0)
        init(key: Key) { self.key = key }
        var value: Double { current.withLock { $0 } }
        func set(_ value: Int64) { current.withLock { $0 = Double(value) } }
        func set(_ value: Double) { current.withLock { $0 = value } }
        func increment(by amount: Double) { current.withLock { $0 += amount } }
        func decrement(by amount: Double) { current.withLock { $0 -= amount } }
    }
}
