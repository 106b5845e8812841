import Foundation
import MedViewCore
import Synchronization

/// Counters and latency figures for `/metrics` (Prometheus text format). Holds no user data:
/// only counts, codes and durations.
public final class ServerMetrics: ChatObserver {
    /// Recent samples of one latency, for quantiles.
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

    private struct State {
        var firstChunk = Reservoir()
        var firstChunkServer = Reservoir()
        var delivery = Reservoir()
        var alert = Reservoir()
        var streamsEnded: [String: Int] = [:]
        var errors: [String: Int] = [:]
        var connectionsOpen = 0
        var connectionsTotal = 0
        var commands = 0
        var storeWriteFailures: [String: Int] = [:]
        var unsaved = 0
    }

    private let state = Mutex(State())
    /// Latency samples kept for quantiles (the most recent ones).
    public let reservoirSize: Int

    public init(reservoirSize: Int = 20_000) {
        self.reservoirSize = reservoirSize
    }

    public func firstChunk(total: Duration, serverAdded: Duration) {
        state.withLock { s in
            s.firstChunk.add(Self.seconds(total), limit: reservoirSize)
            s.firstChunkServer.add(Self.seconds(serverAdded), limit: reservoirSize)
        }
    }

    public func alertPublished(after: Duration) {
        state.withLock { $0.alert.add(Self.seconds(after), limit: reservoirSize) }
    }

    /// An event reached the socket `latency` after it was published.
    func delivered(after latency: Duration) {
        state.withLock { $0.delivery.add(Self.seconds(latency), limit: reservoirSize) }
    }

    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }

    public func streamEnded(status: MessageStatus) {
        state.withLock { $0.streamsEnded[status.rawValue, default: 0] += 1 }
    }

    public func storeWriteFailed(operation: StoreOperation) {
        state.withLock { $0.storeWriteFailures[operation.rawValue, default: 0] += 1 }
    }

    public func unsavedAnswers(_ count: Int) {
        state.withLock { $0.unsaved = count }
    }

    func error(_ code: String) { state.withLock { $0.errors[code, default: 0] += 1 } }
    func connectionOpened() { state.withLock { $0.connectionsOpen += 1; $0.connectionsTotal += 1 } }
    func connectionClosed() { state.withLock { $0.connectionsOpen -= 1 } }
    func commandReceived() { state.withLock { $0.commands += 1 } }

    /// The Prometheus text exposition.
    public func render() -> String {
        let s = state.withLock { $0 }
        var out = ""
        func summary(_ name: String, _ help: String, _ r: Reservoir) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) summary\n"
            for (quantile, value) in zip(["0.5", "0.9", "0.99"], r.quantiles([0.5, 0.9, 0.99])) {
                out += "\(name){quantile=\"\(quantile)\"} \(value)\n"
            }
            out += "\(name)_sum \(r.sum)\n\(name)_count \(r.count)\n"
        }
        summary("medview_stream_first_chunk_seconds", "Time from a message arriving to its first chunk being published.", s.firstChunk)
        summary("medview_stream_first_chunk_server_seconds", "Server-added part of that time: before the model is called, plus from the delta that completed the first chunk to its publication.", s.firstChunkServer)
        summary("medview_safety_alert_seconds", "Time from an emergency message arriving to its safety.alert being published (the store write of the message comes first).", s.alert)
        summary("medview_chunk_delivery_seconds", "Time from a chunk being published to its being written to a WebSocket.", s.delivery)
        out += "# HELP medview_streams_ended_total Streams ended, by status.\n# TYPE medview_streams_ended_total counter\n"
        for (status, n) in s.streamsEnded.sorted(by: { $0.key < $1.key }) {
            out += "medview_streams_ended_total{status=\"\(status)\"} \(n)\n"
        }
        out += "# HELP medview_errors_total Typed errors sent, by code.\n# TYPE medview_errors_total counter\n"
        for (code, n) in s.errors.sorted(by: { $0.key < $1.key }) {
            out += "medview_errors_total{code=\"\(code)\"} \(n)\n"
        }
        out += "# HELP medview_store_write_failures_total Store writes that failed, by operation.\n# TYPE medview_store_write_failures_total counter\n"
        for (operation, n) in s.storeWriteFailures.sorted(by: { $0.key < $1.key }) {
            out += "medview_store_write_failures_total{operation=\"\(operation)\"} \(n)\n"
        }
        out += "# HELP medview_unsaved_answers Answers kept in memory because the store refused their ending.\n# TYPE medview_unsaved_answers gauge\nmedview_unsaved_answers \(s.unsaved)\n"
        out += "# TYPE medview_websocket_connections gauge\nmedview_websocket_connections \(s.connectionsOpen)\n"
        out += "# TYPE medview_websocket_connections_total counter\nmedview_websocket_connections_total \(s.connectionsTotal)\n"
        out += "# TYPE medview_commands_total counter\nmedview_commands_total \(s.commands)\n"
        return out
    }
}
