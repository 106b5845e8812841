import CoreMetrics
import Foundation
import Logging
import MedViewServer
import Synchronization
import Testing

/// The CloudWatch EMF records and JSON log lines, checked on what they write (the live checks
/// with real clients are in Tests/python/test_metrics.py).
@Suite struct ObservabilityTests {
    final class Lines: Sendable {
        let all = Mutex<[String]>([])
        func add(_ line: String) { all.withLock { $0.append(line) } }
        var objects: [[String: Any]] {
            all.withLock { $0 }.map { try! JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
        }
    }

    @Test("a refused connection is one ConnectionAttempts and one ConnectionFailures with both dimension sets")
    func connectionFailureRecord() throws {
        let lines = Lines()
        let emf = EMFMetrics(namespace: "MedView", service: "medview-prod", interval: .seconds(60), write: lines.add)
        Counter(label: "medview_connection_attempts_total", dimensions: [("transport", "websocket"), ("result", "auth_refused")], factory: emf).increment()
        Counter(label: "medview_connection_attempts_total", dimensions: [("transport", "sse"), ("result", "accepted")], factory: emf).increment()
        emf.flush()
        let records = lines.objects
        let attempts = records.filter { $0["ConnectionAttempts"] != nil }
        #expect(attempts.count == 1 && attempts[0]["ConnectionAttempts"] as? Int == 2)
        let failures = try #require(records.first { $0["ConnectionFailures"] != nil })
        #expect(failures["ConnectionFailures"] as? Int == 1)
        #expect(failures["Reason"] as? String == "auth_refused")
        #expect(failures["Service"] as? String == "medview-prod")
        let directive = try #require((failures["_aws"] as? [String: Any])?["CloudWatchMetrics"] as? [[String: Any]])
        #expect(directive[0]["Namespace"] as? String == "MedView")
        #expect(directive[0]["Dimensions"] as? [[String]] == [["Service"], ["Service", "Reason"]])
        #expect((directive[0]["Metrics"] as? [[String: String]]) == [["Name": "ConnectionFailures", "Unit": "Count"]])
    }

    @Test("latencies go out in milliseconds, at most 100 values a record, and add up")
    func latencyRecords() {
        let lines = Lines()
        let emf = EMFMetrics(namespace: "MedView", service: "medview", interval: .seconds(60), write: lines.add)
        let timer = CoreMetrics.Timer(label: "medview_time_to_first_chunk_seconds", dimensions: [("transport", "websocket")], factory: emf)
        for _ in 0..<150 { timer.recordNanoseconds(812_000_000) }
        emf.flush()
        let values = lines.objects.compactMap { $0["TimeToFirstChunkMs"] as? [Double] }
        #expect(values.map(\.count) == [100, 50])
        #expect(values.joined().allSatisfy { $0 == 812 })
        // Nothing new: nothing written but the gauges, which go out every sixth flush.
        lines.all.withLock { $0.removeAll() }
        emf.flush()
        #expect(lines.all.withLock { $0 }.isEmpty)
    }

    @Test("open connections are a gauge per transport, written with every sixth flush")
    func gauges() {
        let lines = Lines()
        let emf = EMFMetrics(namespace: "MedView", service: "medview", interval: .seconds(60), write: lines.add)
        let meter = Meter(label: "medview_websocket_connections", factory: emf)
        meter.increment()
        meter.increment()
        meter.decrement()
        emf.flush()
        let open = lines.objects.filter { $0["ConnectionsOpen"] != nil }
        #expect(open.count == 1)
        #expect(open.first?["ConnectionsOpen"] as? Double == 1)
        #expect(open.first?["Transport"] as? String == "websocket")
    }

    @Test("JSON log lines carry the connection id of the work they describe, and the event's metadata")
    func jsonLines() async throws {
        let lines = Lines()
        let handler = JSONLogHandler(label: "medview", level: .info, writer: CapturingWriter(lines: lines).writer, metadataProvider: LogContext.metadataProvider)
        let logger = Logger(label: "medview", factory: { _ in handler })
        await LogContext.$connectionId.withValue("ws_test1") {
            await Task {
                logger.info("stream.started", metadata: ["stream.id": "s_1"])
            }.value
        }
        logger.debug("hidden")
        let objects = lines.objects
        #expect(objects.count == 1)
        #expect(objects.first?["connection.id"] as? String == "ws_test1")
        #expect(objects.first?["stream.id"] as? String == "s_1")
        #expect(objects.first?["message"] as? String == "stream.started")
        #expect(objects.first?["level"] as? String == "info")
        #expect(objects.first?["timestamp"] as? String != nil)
    }

    @Test("the metrics are histograms with 2 s as a bucket bound, and off records nothing")
    func exposition() {
        let on = ServerMetrics()
        on.firstChunk(total: .milliseconds(900), serverAdded: .milliseconds(3))
        let text = on.render()
        #expect(text.contains("# TYPE medview_first_chunk_server_seconds histogram"))
        #expect(text.contains("medview_first_chunk_server_seconds_bucket{le=\"2.0\"} 1"))
        #expect(text.contains("medview_first_chunk_server_seconds_count 1"))
        #expect(!text.contains("summary"))
        let off = ServerMetrics(enabled: false)
        off.firstChunk(total: .milliseconds(900), serverAdded: .milliseconds(3))
        #expect(!off.render().contains("medview_first_chunk_server_seconds_count 1"))
    }
}

/// A ``LineWriter`` whose lines the test reads (through a pipe drained into `lines`).
struct CapturingWriter {
    let writer: LineWriter
    init(lines: ObservabilityTests.Lines) {
        writer = LineWriter(sink: lines.add)
    }
}
