import Foundation
import MedViewSafety

extension ComponentBenchmarks {
    /// What the safety pass costs on the hot path: the output guard per 256-character chunk, the
    /// emergency detector and the medication checker per message.
    public static func safety(chunks: Int, print emit: (String) -> Void) throws {
        // Realistic model text: calm health information, cut into 256-character chunks the way
        // the stream engine sends them.
        let paragraph = "Staying hydrated, resting and taking your medicines exactly as prescribed are good habits. If your headache gets worse, comes with a stiff neck, fever or confusion, call your doctor today. Ibuprofen can upset the stomach; take it with food and no more than the label says. "
        let text = String(repeating: paragraph, count: chunks * 256 / paragraph.count + 1)
        var pieces: [String] = []
        var rest = Substring(text)
        while pieces.count < chunks, !rest.isEmpty {
            pieces.append(String(rest.prefix(256)))
            rest = rest.dropFirst(256)
        }
        let policy = try OutputPolicy()
        var guardState = StreamGuard(policy: policy)
        var released = 0
        let clock = ContinuousClock()
        let start = clock.now
        for piece in pieces {
            released += guardState.append(piece).release.count
        }
        released += guardState.finish().release.count
        let guardTime = clock.now - start
        let perChunk = Double(guardTime.components.attoseconds) / 1e12 / Double(pieces.count) + Double(guardTime.components.seconds) * 1e6 / Double(pieces.count)

        // Loading the bundled data (rules, vocabularies, the learned reader's weights, the
        // knowledge base): paid once per process, at start or on the first message.
        let l0 = clock.now
        _ = try EmergencyDetector()
        let l1 = clock.now
        _ = try MedicationChecker()
        let l2 = clock.now
        let detector = EmergencyDetector.shared
        let checker = MedicationChecker.shared
        let messages = [
            "I have had a headache for three days and ibuprofen is not helping much, what else can I try?",
            "my dad's face is drooping and he can't lift his arm",
            "I take warfarin every day, can I take Advil for my back pain?",
            "how much water should i drink when i have a cold",
        ]
        let rounds = 2_000
        let t0 = clock.now
        var hits = 0
        for _ in 0..<rounds {
            for m in messages where detector.assess(m) != nil { hits += 1 }
        }
        let assessTime = clock.now - t0
        let t1 = clock.now
        for _ in 0..<rounds {
            for m in messages {
                var context = MedicationContext()
                hits += checker.check(m, context: &context).count
            }
        }
        let checkTime = clock.now - t1
        func micros(_ d: Duration, _ n: Int) -> String {
            String(format: "%.1f µs", (Double(d.components.seconds) * 1e6 + Double(d.components.attoseconds) / 1e12) / Double(n))
        }
        emit("medview safety bench (\(pieces.count) chunks of 256 characters; \(rounds * messages.count) messages)")
        emit("  output guard:        \(String(format: "%.1f µs", perChunk)) per 256-character chunk (\(released) characters released)")
        emit("  emergency detector:  \(micros(assessTime, rounds * messages.count)) per message")
        emit("  medication checker:  \(micros(checkTime, rounds * messages.count)) per message (\(hits) hits)")
        func millis(_ d: Duration) -> Double { Double(d.components.seconds) * 1e3 + Double(d.components.attoseconds) / 1e15 }
        emit(String(format: "  loading the data:    detector %.0f ms, checker %.0f ms (once per process)", millis(l1 - l0), millis(l2 - l1)))
    }

    /// Per-message cost of the emergency detector and the medication checker on real message
    /// texts: each message timed 5 times, its least time kept (the machine's noise removed as far
    /// as one can), then the distribution over messages.
    public static func safetyPerMessage(_ texts: [String], print emit: (String) -> Void) throws {
        let detector = EmergencyDetector.shared
        let checker = MedicationChecker.shared
        let clock = ContinuousClock()
        func micros(_ d: Duration) -> Double { Double(d.components.seconds) * 1e6 + Double(d.components.attoseconds) / 1e12 }
        var assess: [Double] = [], check: [Double] = [], both: [Double] = []
        var alerts = 0
        for text in texts {
            var a = Double.infinity, c = Double.infinity
            for _ in 0..<5 {
                let t0 = clock.now
                _ = detector.assess(text)
                let t1 = clock.now
                var context = MedicationContext()
                _ = checker.check(text, context: &context)
                let t2 = clock.now
                a = min(a, micros(t1 - t0))
                c = min(c, micros(t2 - t1))
            }
            if detector.assess(text) != nil { alerts += 1 }
            assess.append(a)
            check.append(c)
            both.append(a + c)
        }
        func line(_ name: String, _ values: [Double]) -> String {
            let s = values.sorted()
            guard !s.isEmpty else { return "  \(name): no messages" }
            func q(_ p: Double) -> Double { s[min(s.count - 1, Int((Double(s.count) * p).rounded(.down)))] }
            return String(format: "  %@ p50 %.0f µs, p99 %.0f µs, slowest %.0f µs", name, q(0.5), q(0.99), s.last!)
        }
        emit("per message (\(texts.count) messages, least of 5 runs each; \(alerts) alerts)")
        emit(line("emergency detector: ", assess))
        emit(line("medication checker: ", check))
        emit(line("both:               ", both))
    }
}
