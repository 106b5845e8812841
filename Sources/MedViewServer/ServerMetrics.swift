import Foundation
import MedViewCore
import Synchronization

/// Counters and latency figures for `/metrics` (Prometheus text format). Holds no user data:
/// only counts, codes and durations.
public final class ServerMetrics: ChatObserver {
    private struct State {
        var firstChunkSamples: [Double] = []
        var firstChunkNext = 0
        var firstChunkCount = 0
        var firstChunkSum = 0.0
        var streamsEnded: [String: Int] = [:]
        var errors: [String: Int] = [:]
        var connectionsOpen = 0
        var connectionsTotal = 0
        var commands = 0
    }

    private let state = Mutex(State())
    /// Latency samples kept for quantiles (the most recent ones).
    public let reservoirSize: Int

    public init(reservoirSize: Int = 20_000) {
        self.reservoirSize = reservoirSize
    }

    public func firstChunk(after latency: Duration) {
        let seconds = Double(latency.components.seconds) + Double(latency.components.attoseconds) / 1e18
        state.withLock { s in
            if s.firstChunkSamples.count < reservoirSize {
                s.firstChunkSamples.append(seconds)
            } else {
                s.firstChunkSamples[s.firstChunkNext] = seconds
                s.firstChunkNext = (s.firstChunkNext + 1) % reservoirSize
            }
            s.firstChunkCount += 1
            s.firstChunkSum += seconds
        }
    }

    public func streamEnded(status: MessageStatus) {
        state.withLock { $0.streamsEnded[status.rawValue, default: 0] += 1 }
    }

    func error(_ code: String) { state.withLock { $0.errors[code, default: 0] += 1 } }
    func connectionOpened() { state.withLock { $0.connectionsOpen += 1; $0.connectionsTotal += 1 } }
    func connectionClosed() { state.withLock { $0.connectionsOpen -= 1 } }
    func commandReceived() { state.withLock { $0.commands += 1 } }

    /// Quantiles of the recent first-chunk latencies, in seconds.
    public func firstChunkQuantiles(_ qs: [Double]) -> [Double] {
        let samples = state.withLock { $0.firstChunkSamples }.sorted()
        guard !samples.isEmpty else { return qs.map { _ in 0 } }
        return qs.map { q in samples[min(samples.count - 1, Int((Double(samples.count) * q).rounded(.down)))] }
    }

    /// The Prometheus text exposition.
    public func render() -> String {
        let s = state.withLock { $0 }
        let q = firstChunkQuantiles([0.5, 0.9, 0.99])
        var out = ""
        out += "# HELP medview_stream_first_chunk_seconds Server time from a message arriving to its first chunk being published.\n"
        out += "# TYPE medview_stream_first_chunk_seconds summary\n"
        for (quantile, value) in zip(["0.5", "0.9", "0.99"], q) {
            out += "medview_stream_first_chunk_seconds{quantile=\"\(quantile)\"} \(value)\n"
        }
        out += "medview_stream_first_chunk_seconds_sum \(s.firstChunkSum)\n"
        out += "medview_stream_first_chunk_seconds_count \(s.firstChunkCount)\n"
        out += "# HELP medview_streams_ended_total Streams ended, by status.\n# TYPE medview_streams_ended_total counter\n"
        for (status, n) in s.streamsEnded.sorted(by: { $0.key < $1.key }) {
            out += "medview_streams_ended_total{status=\"\(status)\"} \(n)\n"
        }
        out += "# HELP medview_errors_total Typed errors sent, by code.\n# TYPE medview_errors_total counter\n"
        for (code, n) in s.errors.sorted(by: { $0.key < $1.key }) {
            out += "medview_errors_total{code=\"\(code)\"} \(n)\n"
        }
        out += "# TYPE medview_websocket_connections gauge\nmedview_websocket_connections \(s.connectionsOpen)\n"
        out += "# TYPE medview_websocket_connections_total counter\nmedview_websocket_connections_total \(s.connectionsTotal)\n"
        out += "# TYPE medview_commands_total counter\nmedview_commands_total \(s.commands)\n"
        return out
    }
}
