import Foundation

extension Benchmark {
    /// The cost of metrics on the hot path: throughput of bursts of `concurrentStreams` answers
    /// (scripted model at zero delay), on servers with metrics on (Prometheus and CloudWatch EMF,
    /// JSON logs) and off (JSON logs, nothing recorded), started one after the other in
    /// alternating order, `pairs` times, `rounds` bursts each after a warm-up.
    public func metricsOverhead(pairs: Int) async throws {
        print("medview bench: metrics on vs off, \(pairs) alternating pairs of servers, \(concurrentStreams) concurrent answers x \(rounds) rounds each")
        var chunksPerSecond: [Bool: [Double]] = [true: [], false: []]
        for pair in 0..<pairs {
            for on in pair % 2 == 0 ? [true, false] : [false, true] {
                let figure = try await burstThroughput(metrics: on)
                chunksPerSecond[on, default: []].append(figure)
                print("  pair \(pair + 1), metrics \(on ? "on " : "off"): \(Int(figure)) chunks/s")
            }
        }
        func median(_ values: [Double]) -> Double {
            let sorted = values.sorted()
            return sorted.isEmpty ? 0 : sorted[sorted.count / 2]
        }
        let on = median(chunksPerSecond[true] ?? [])
        let off = median(chunksPerSecond[false] ?? [])
        let cost = off > 0 ? (off - on) / off * 100 : 0
        print("  median: on \(Int(on)) chunks/s, off \(Int(off)) chunks/s: metrics cost \(String(format: "%.1f", cost)) % of throughput")
    }

    private func burstThroughput(metrics: Bool) async throws -> Double {
        let server = try BenchServer(executable: executable, extraArguments: [
            "--model", "scripted:delay=0", "--max-streams-per-user", "100000", "--max-connections-per-user", "100000",
            "--log-format", "json", "--metrics", metrics ? "on" : "off", "--metrics-flush-ms", "1000",
        ], quietErrors: true)
        defer { server.stop() }
        let tokens = try await BenchTokens(dataDirectory: server.dataDirectory, users: concurrentStreams)
        let url = "http://127.0.0.1:\(server.port)"
        _ = try await runRound(url: url, tokens: tokens, round: -1)
        let clock = ContinuousClock()
        var chunks = 0
        let started = clock.now
        for round in 0..<rounds {
            chunks += try await runRound(url: url, tokens: tokens, round: round).reduce(0) { $0 + $1.chunks }
        }
        // A figure from answers that never came would be a lie: say so instead.
        guard chunks > 0 else { throw BenchError("no answer streamed from the server with metrics \(metrics ? "on" : "off")") }
        return Double(chunks) / Self.seconds(clock.now - started)
    }
}
