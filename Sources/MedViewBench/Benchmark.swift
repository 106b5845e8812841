import Foundation
import HummingbirdWSClient
import Logging
import MedViewClient
import MedViewProtocol
import MedViewServer
import NIOCore
import Synchronization

/// `medview bench`: drives a live server (scripted model, zero delay) over WebSocket and prints
/// time to first chunk, chunk latency, throughput and memory per idle connection.
public struct Benchmark: Sendable {
    public var executable: String
    public var concurrentStreams: Int
    public var rounds: Int
    public var idleConnectionSteps: [Int]
    public var print: @Sendable (String) -> Void

    public init(executable: String, concurrentStreams: Int, rounds: Int, idleConnectionSteps: [Int], print: @escaping @Sendable (String) -> Void) {
        self.executable = executable
        self.concurrentStreams = concurrentStreams
        self.rounds = rounds
        self.idleConnectionSteps = idleConnectionSteps
        self.print = print
    }

    public func run() async throws {
        try await latency()
        if !idleConnectionSteps.isEmpty { try await memory() }
    }

    // MARK: - Latency and throughput

    struct StreamTiming: Sendable {
        var firstChunk: Duration
        var chunkArrivals: [Duration]
        var chunks: Int
        var chars: Int
        /// From sending `chat.send` to receiving `safety.alert`, for emergency messages.
        var alert: Duration?
    }

    /// An emergency message: its answer starts with a `safety.alert`.
    static let emergencyText = "I have crushing chest pain going down my left arm and I'm sweating"

    private func latency() async throws {
        print("medview bench: live server (this binary) on loopback, scripted model at zero delay; load generator: MedViewClient (the Swift SDK, as an app sees it) on the same 2 cores")

        // 1. One stream at a time: the floor.
        do {
            let server = try BenchServer(executable: executable, extraArguments: ["--model", "scripted:delay=0"])
            defer { server.stop() }
            let tokens = try await BenchTokens(dataDirectory: server.dataDirectory, users: 1)
            let url = "http://127.0.0.1:\(server.port)"
            var all: [StreamTiming] = []
            for i in 0..<200 {
                if let t = try await Self.oneStream(url: url, token: tokens.token(0), id: "seq-\(i)", text: "How can I sleep better?") { all.append(t) }
            }
            let m = Self.summary(try await server.metrics(), name: "medview_stream_first_chunk_server_seconds")
            print("  [sequential] \(all.count) streams one at a time")
            print("    server-added time to first chunk:   p50 \(Self.ms(m["0.5"] ?? 0))  p99 \(Self.ms(m["0.99"] ?? 0))")
            print("    client-observed time to first chunk: p50 \(Self.ms(Self.pct(all.map(\.firstChunk).sorted(), 0.5)))  p99 \(Self.ms(Self.pct(all.map(\.firstChunk).sorted(), 0.99)))")
            var alerts: [Duration] = []
            for i in 0..<100 {
                if let a = try await Self.oneStream(url: url, token: tokens.token(0), id: "alert-\(i)", text: Self.emergencyText)?.alert { alerts.append(a) }
            }
            alerts.sort()
            let published = Self.summary(try await server.metrics(), name: "medview_safety_alert_seconds")
            print("    emergency alert, \(alerts.count) messages: server (arrival -> published) p50 \(Self.ms(published["0.5"] ?? 0))  p99 \(Self.ms(published["0.99"] ?? 0)); client (send -> received) p50 \(Self.ms(Self.pct(alerts, 0.5)))  p99 \(Self.ms(Self.pct(alerts, 0.99)))")
        }

        // 2. Steady state: `concurrentStreams` answers in flight at once, arrivals spread out.
        do {
            let server = try BenchServer(executable: executable, extraArguments: [
                "--model", "scripted:delay=0", "--max-streams-per-user", "100000", "--max-connections-per-user", "100000",
            ])
            defer { server.stop() }
            let tokens = try await BenchTokens(dataDirectory: server.dataDirectory, users: concurrentStreams)
            let url = "http://127.0.0.1:\(server.port)"
            let clock = ContinuousClock()
            let started = clock.now
            // Each answer is slowed by the model itself (20 ms per delta, about 1 s in all), so the
            // streams overlap; the server-added figures leave the model's own time out.
            let text = "How can I sleep better? [[repeat:2]][[delay:20]][[delta:12]]"
            let streams = concurrentStreams
            let rounds = self.rounds
            let all = try await withThrowingTaskGroup(of: [StreamTiming].self) { group in
                for user in 0..<streams {
                    let token = tokens.token(user)
                    group.addTask {
                        try await Task.sleep(for: .milliseconds(Int.random(in: 0..<1000)))
                        var result: [StreamTiming] = []
                        for round in 0..<rounds {
                            // Every tenth patient reports an emergency: its alert latency under load.
                            let message = user % 10 == 0 ? Self.emergencyText + " [[repeat:2]][[delay:20]][[delta:12]]" : text
                            if let t = try await Self.oneStream(url: url, token: token, id: "c\(round)-u\(user)", text: message) { result.append(t) }
                        }
                        return result
                    }
                }
                var all: [StreamTiming] = []
                for try await part in group { all += part }
                return all
            }
            let elapsed = clock.now - started
            let metrics = try await server.metrics()
            let added = Self.summary(metrics, name: "medview_stream_first_chunk_server_seconds")
            let delivery = Self.summary(metrics, name: "medview_chunk_delivery_seconds")
            let chunks = all.reduce(0) { $0 + $1.chunks }
            print("  [\(streams) concurrent streams] \(all.count) answers of ~1 s, \(streams) in flight, arrivals spread over 1 s, \(rounds) each")
            print("    server-added time to first chunk:   p50 \(Self.ms(added["0.5"] ?? 0))  p99 \(Self.ms(added["0.99"] ?? 0))   (before the model is called + delta-to-publish; model time excluded)")
            print("    chunk delivery latency:              p50 \(Self.ms(delivery["0.5"] ?? 0))  p99 \(Self.ms(delivery["0.99"] ?? 0))   (chunk published -> written to its socket)")
            print("    client-observed time to first chunk: p50 \(Self.ms(Self.pct(all.map(\.firstChunk).sorted(), 0.5)))  p99 \(Self.ms(Self.pct(all.map(\.firstChunk).sorted(), 0.99)))   (includes the model's 20 ms per delta)")
            print("    throughput:                          \(Int(Double(chunks) / Self.seconds(elapsed))) chunks/s")
            let alerts = all.compactMap(\.alert).sorted()
            let published = Self.summary(metrics, name: "medview_safety_alert_seconds")
            print("    emergency alert, \(alerts.count) messages: server (arrival -> published) p50 \(Self.ms(published["0.5"] ?? 0))  p99 \(Self.ms(published["0.99"] ?? 0)); client (send -> received) p50 \(Self.ms(Self.pct(alerts, 0.5)))  p99 \(Self.ms(Self.pct(alerts, 0.99)))")
        }

        // 3. Burst: every client sends at the same instant, zero-delay model; throughput bound.
        do {
            let server = try BenchServer(executable: executable, extraArguments: [
                "--model", "scripted:delay=0", "--max-streams-per-user", "100000", "--max-connections-per-user", "100000",
            ])
            defer { server.stop() }
            let tokens = try await BenchTokens(dataDirectory: server.dataDirectory, users: concurrentStreams)
            let url = "http://127.0.0.1:\(server.port)"
            _ = try await runRound(url: url, tokens: tokens, round: -1)
            let clock = ContinuousClock()
            var all: [StreamTiming] = []
            let started = clock.now
            for round in 0..<rounds {
                all += try await runRound(url: url, tokens: tokens, round: round)
            }
            let elapsed = clock.now - started
            let metrics = try await server.metrics()
            let added = Self.summary(metrics, name: "medview_stream_first_chunk_server_seconds")
            let delivery = Self.summary(metrics, name: "medview_chunk_delivery_seconds")
            let firsts = all.map(\.firstChunk).sorted()
            let chunks = all.reduce(0) { $0 + $1.chunks }
            print("  [burst] \(concurrentStreams) messages sent at the same instant, \(rounds) rounds (+1 warm-up): a queue, not a latency figure")
            print("    server-added time to first chunk:   p50 \(Self.ms(added["0.5"] ?? 0))  p99 \(Self.ms(added["0.99"] ?? 0))")
            print("    chunk delivery latency:              p50 \(Self.ms(delivery["0.5"] ?? 0))  p99 \(Self.ms(delivery["0.99"] ?? 0))")
            print("    client-observed time to first chunk: p50 \(Self.ms(Self.pct(firsts, 0.5)))  p99 \(Self.ms(Self.pct(firsts, 0.99)))")
            print("    throughput:                          \(Int(Double(chunks) / Self.seconds(elapsed))) chunks/s, \(Int(Double(all.count) / Self.seconds(elapsed))) answers/s")
        }
    }

    func runRound(url: String, tokens: BenchTokens, round: Int) async throws -> [StreamTiming] {
        try await withThrowingTaskGroup(of: StreamTiming?.self) { group in
            for user in 0..<concurrentStreams {
                let token = tokens.token(user)
                group.addTask {
                    try await Self.oneStream(url: url, token: token, id: "r\(round)-u\(user)", text: "How can I sleep better?")
                }
            }
            var result: [StreamTiming] = []
            for try await timing in group {
                if let timing { result.append(timing) }
            }
            return result
        }
    }

    /// One answer through MedViewClient, the library an app uses: the socket is opened first (an
    /// app's is open before the patient types), then the clock runs from `send` to each event.
    static func oneStream(url: String, token: String, id: String, text: String) async throws -> StreamTiming? {
        let client = MedViewClient(configuration: MedViewClientConfiguration(baseURL: url), httpClient: .shared, logger: Logger(label: "bench")) { _ in
            AccessToken(jwt: token)
        }
        await client.connect()
        for await state in await client.connectionStates() {
            if state == .connected(.webSocket) { break }
            if case .stopped = state { return nil }
        }
        let clock = ContinuousClock()
        let sent = clock.now
        var first: Duration?
        var alert: Duration?
        var arrivals: [Duration] = []
        var chars = 0
        var timing: StreamTiming?
        for await event in await client.send(text, id: id) {
            let now = clock.now - sent
            switch event {
            case .safetyAlert:
                if alert == nil { alert = now }
            case .text(let chunk):
                if first == nil { first = now }
                arrivals.append(now)
                chars += chunk.count
            case .ended, .failed:
                if let first { timing = StreamTiming(firstChunk: first, chunkArrivals: arrivals, chunks: arrivals.count, chars: chars, alert: alert) }
            default:
                continue
            }
        }
        await client.close()
        return timing
    }

    // MARK: - Memory per idle connection

    private func memory() async throws {
        let maxConnections = idleConnectionSteps.max() ?? 0
        let server = try BenchServer(executable: executable, extraArguments: ["--model", "scripted", "--max-connections-per-user", "100000"])
        defer { server.stop() }
        let tokens = try await BenchTokens(dataDirectory: server.dataDirectory, users: 50)
        let url = "ws://127.0.0.1:\(server.port)/v1/ws"
        print("medview bench: resident memory per idle WebSocket connection (server pid \(server.process.processIdentifier))")
        let release = Gate()
        let opened = Counter()
        try await withThrowingTaskGroup(of: Void.self) { group in
            // Warm the server with a few connections so the baseline includes its lazily created state.
            var open = 0
            for i in 0..<10 {
                group.addTask { try await Self.idleConnection(url: url, token: tokens.token(i % 50), opened: opened, release: release) }
            }
            open = 10
            try await opened.wait(for: open)
            try await Task.sleep(for: .milliseconds(500))
            let baseline = server.residentBytes()
            print("  baseline with \(open) connections:  \(baseline / 1024) KiB resident")
            for step in idleConnectionSteps.sorted() {
                while open < step {
                    let i = open
                    group.addTask { try await Self.idleConnection(url: url, token: tokens.token(i % 50), opened: opened, release: release) }
                    open += 1
                    if open % 200 == 0 { try await opened.wait(for: open) }
                }
                try await opened.wait(for: open)
                try await Task.sleep(for: .seconds(1))
                let rss = server.residentBytes()
                let per = Double(rss - baseline) / Double(open - 10) / 1024
                print("  \(open) idle connections:  \(rss / 1024) KiB resident, \(String(format: "%.1f", per)) KiB per connection")
            }
            release.open()
            try await group.waitForAll()
            _ = maxConnections
        }
    }

    private static func idleConnection(url: String, token: String, opened: Counter, release: Gate) async throws {
        var configuration = WebSocketClientConfiguration()
        configuration.additionalHeaders[.authorization] = "Bearer \(token)"
        // Offered as browsers offer it; the server declines it (docs/PROTOCOL.md, "No compression").
        configuration.additionalHeaders[.secWebSocketExtensions] = "permessage-deflate; client_max_window_bits"
        configuration.autoPing = .disabled
        try await WebSocketClient.connect(url: url, configuration: configuration, logger: Logger(label: "bench")) { inbound, outbound, _ in
            try await outbound.write(.text(String(decoding: ClientCommand.ping(Ping(id: "p")).encoded(), as: UTF8.self)))
            var iterator = inbound.messages(maxSize: 1 << 16).makeAsyncIterator()
            _ = try await iterator.next()
            opened.increment()
            await release.wait()
            try await outbound.close(.normalClosure, reason: nil)
        }
    }

    // MARK: - Figures

    static func pct(_ sorted: [Duration], _ q: Double) -> Double {
        guard !sorted.isEmpty else { return 0 }
        return seconds(sorted[min(sorted.count - 1, Int(Double(sorted.count) * q))])
    }

    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }

    static func ms(_ seconds: Double) -> String {
        String(format: "%.3f ms", seconds * 1000)
    }

    static func summary(_ metrics: String, name: String) -> [String: Double] {
        var result: [String: Double] = [:]
        for line in metrics.split(separator: "\n") where line.hasPrefix(name + "{quantile=\"") {
            let rest = line.dropFirst(name.count + 11)
            guard let quote = rest.firstIndex(of: "\"") else { continue }
            let q = String(rest[..<quote])
            let value = Double(line.split(separator: " ").last ?? "") ?? 0
            result[q] = value
        }
        return result
    }
}

/// Development tokens for `bench-user-N`, signed with the server's own development key.
struct BenchTokens: Sendable {
    let tokens: [String]

    init(dataDirectory: String, users: Int) async throws {
        let issuer = try await DevTokenIssuer.load(dataDirectory: dataDirectory)
        var tokens: [String] = []
        for i in 0..<users {
            tokens.append(try await issuer.token(userId: "bench-user-\(i)", lifetime: .seconds(7200)))
        }
        self.tokens = tokens
    }

    func token(_ user: Int) -> String { tokens[user % tokens.count] }
}

/// Counts events and lets a task wait until a number is reached.
final class Counter: Sendable {
    private let value = Mutex(0)

    func increment() { value.withLock { $0 += 1 } }

    func wait(for target: Int, timeout: Duration = .seconds(120)) async throws {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while value.withLock({ $0 }) < target {
            guard ContinuousClock.now < deadline else { throw BenchError("only \(value.withLock { $0 }) of \(target) connections opened") }
            try await Task.sleep(for: .milliseconds(20))
        }
    }
}

/// A one-shot gate many tasks wait on.
final class Gate: Sendable {
    private let state = Mutex<(open: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    func wait() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let now = state.withLock { s -> Bool in
                if s.open { return true }
                s.waiters.append(c)
                return false
            }
            if now { c.resume() }
        }
    }

    func open() {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.open = true
            defer { s.waiters = [] }
            return s.waiters
        }
        for w in waiters { w.resume() }
    }
}
