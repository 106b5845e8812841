import Foundation
import HummingbirdWSClient
import Logging
import MedViewPostgres
import MedViewProtocol
import MedViewServer
import MedViewStandIns
import NIOCore
import Synchronization

/// `medview bench lambda`: the serverless shape's costs, with the scripted model, against
/// ``LambdaStandIn`` (API Gateway WebSocket + Management API + Lambda Runtime API on loopback)
/// and a real `bootstrap` child process on PostgreSQL.
///
/// Figures: cold start (process start to its first `next`), the first answer's time from
/// `chat.send` to its first chunk (cold and warm), the per-invocation overhead (a `ping`
/// round trip: API Gateway event, invocation, Management API post), the `bootstrap` binary's
/// size and its resident memory.
public struct LambdaBenchmark: Sendable {
    public var bootstrap: String
    public var databaseURL: String
    public var answers: Int
    public var pings: Int
    public var coldStarts: Int
    public var print: @Sendable (String) -> Void

    public init(bootstrap: String, databaseURL: String, answers: Int, pings: Int, coldStarts: Int, print: @escaping @Sendable (String) -> Void) {
        self.bootstrap = bootstrap
        self.databaseURL = databaseURL
        self.answers = answers
        self.pings = pings
        self.coldStarts = coldStarts
        self.print = print
    }

    public func run() async throws {
        guard FileManager.default.isExecutableFile(atPath: bootstrap) else {
            throw BenchError("no bootstrap executable at \(bootstrap): build it with `swift build --product bootstrap` (or pass --bootstrap)")
        }
        let size = (try? FileManager.default.attributesOfItem(atPath: bootstrap)[.size] as? Int) ?? 0
        print("MedView on Lambda (stand-in), scripted model, PostgreSQL")
        print(String(format: "  bootstrap binary: %.1f MB (%@)", Double(size) / 1e6, bootstrap))
        // Each cold start on a stand-in of its own, so that no invocation can go to a process
        // that has gone; the last process then serves the rest of the benchmark.
        // One data directory (the development signing key and the master key file) for every
        // process, as every environment of one function shares its configuration.
        let directory = NSTemporaryDirectory() + "medview-bench-lambda-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // A schema of the benchmark's own (its data keys are wrapped by this run's master key),
        // dropped at the end.
        let schema = "medview_bench_lambda_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
        let url = databaseURL + (databaseURL.contains("?") ? "&" : "?") + "schema=" + schema
        var colds: [Duration] = []
        let rounds = max(1, coldStarts)
        let bench = self
        for round in 1...rounds {
            let soFar = colds
            let cold: Duration
            do {
                cold = try await LambdaStandIn.withRunning(configuration: LambdaStandInConfiguration(functionTimeout: .seconds(120))) { standIn in
                    try await bench.measure(standIn, directory: directory, databaseURL: url, coldStartsSoFar: soFar, last: round == rounds)
                }
            } catch {
                await Self.drop(url: url)
                // What the function said, for the diagnosis.
                let log = (try? String(contentsOfFile: directory + "/bootstrap.log", encoding: .utf8)) ?? ""
                print("  bootstrap's last log lines:")
                for line in log.split(separator: "\n").suffix(40) where !line.contains("CloudWatchMetrics") { print("    " + line) }
                throw error
            }
            colds.append(cold)
        }
        await Self.drop(url: url)
    }

    static func drop(url: String) async {
        guard let settings = try? PostgresSettings.parse(url: url) else { return }
        try? await PostgresConversationStore.dropSchema(settings: settings, logger: Logger(label: "bench"))
    }

    /// Starts a `bootstrap` process on `standIn` and returns its cold start; the `last` one also
    /// measures answers, invocations and memory.
    private func measure(_ standIn: LambdaStandIn, directory: String, databaseURL: String, coldStartsSoFar: [Duration], last: Bool) async throws -> Duration {
        let credentials = standIn.configuration.credentials
        var environment = ProcessInfo.processInfo.environment
        environment["AWS_LAMBDA_RUNTIME_API"] = standIn.runtimeAPI(for: "handler")
        environment["MEDVIEW_WS_MANAGEMENT_ENDPOINT"] = standIn.managementEndpoint.absoluteString
        environment["AWS_REGION"] = standIn.configuration.region
        environment["AWS_ACCESS_KEY_ID"] = credentials.accessKeyID
        environment["AWS_SECRET_ACCESS_KEY"] = credentials.secretAccessKey
        environment["AWS_SESSION_TOKEN"] = nil
        environment["MEDVIEW_DATABASE_URL"] = databaseURL
        environment["MEDVIEW_DATA_DIR"] = directory
        // The scripted model without its default pause between deltas: the figures are the shape's own.
        environment["MEDVIEW_MODEL"] = "scripted:delay=1"
        environment["MEDVIEW_ENV"] = "development"
        environment["MEDVIEW_LOG_LEVEL"] = "warning"
        environment["MEDVIEW_RATE_LIMIT_PER_MINUTE"] = "1000000"
        environment["MEDVIEW_RATE_LIMIT_BURST"] = "1000000"

        let started = ContinuousClock.now
        let process = try Self.spawn(bootstrap, environment: environment, log: directory + "/bootstrap.log")
        defer {
            process.terminate()
            process.waitUntilExit()
        }
        while standIn.idleEnvironments(of: "handler") < 1 {
            guard process.isRunning else { throw BenchError("bootstrap exited with status \(process.terminationStatus) before its first next") }
            guard ContinuousClock.now - started < .seconds(60) else { throw BenchError("no next within 60 s") }
            try await Task.sleep(for: .microseconds(200))
        }
        let cold = ContinuousClock.now - started
        guard last else { return cold }
        let colds = (coldStartsSoFar + [cold]).sorted()
        let rssIdle = Self.residentBytes(process.processIdentifier)
        print("  cold start (process start -> first next): median \(Self.ms(colds[colds.count / 2])), min \(Self.ms(colds[0])), max \(Self.ms(colds[colds.count - 1])) over \(colds.count)")
        print("  resident memory after start: \(rssIdle / 1024) KiB")

        let issuer = try await DevTokenIssuer.load(dataDirectory: directory)
        let token = try await issuer.token(userId: "bench-lambda", lifetime: .seconds(3600))
        let client = try await BenchSocket.connect(url: standIn.webSocketURL.absoluteString, token: token)
        defer { client.close() }

        // First answers: chat.send to the first chunk (the first is the environment's first answer).
        var firsts: [Duration] = []
        var totals: [Duration] = []
        for i in 0..<max(1, answers) {
            let sent = ContinuousClock.now
            client.send(.chatSend(ChatSend(id: "b\(i)", conversationId: nil, text: "What helps with a mild headache?")))
            var first: Duration?
            while true {
                let event = try await client.next(timeout: .seconds(60))
                if case .error(let error) = event, error.streamId == nil { throw BenchError("the function answered \(error.code.rawValue): \(error.message)") }
                if case .streamChunk = event, first == nil { first = ContinuousClock.now - sent }
                if event.isTerminal { break }
            }
            firsts.append(first ?? .zero)
            totals.append(ContinuousClock.now - sent)
        }
        print("  chat.send -> first chunk, first answer after the cold start: \(Self.ms(firsts[0]))")
        if firsts.count > 1 {
            let warm = Array(firsts.dropFirst()).sorted()
            print("  chat.send -> first chunk, warm: median \(Self.ms(warm[warm.count / 2])), p95 \(Self.ms(warm[min(warm.count - 1, warm.count * 95 / 100)])) over \(warm.count)")
            let whole = Array(totals.dropFirst()).sorted()
            print("  whole answer (every event posted through the Management API): median \(Self.ms(whole[whole.count / 2]))")
        }
        // Per-invocation overhead: a ping is one invocation that posts one ack.
        var rounds: [Duration] = []
        for i in 0..<max(1, pings) {
            let sent = ContinuousClock.now
            client.send(.ping(Ping(id: "p\(i)")))
            _ = try await client.next(timeout: .seconds(30))
            rounds.append(ContinuousClock.now - sent)
        }
        rounds.sort()
        print("  per-invocation overhead (ping -> ack through API Gateway, Lambda, Management API): median \(Self.ms(rounds[rounds.count / 2])), p95 \(Self.ms(rounds[min(rounds.count - 1, rounds.count * 95 / 100)])) over \(rounds.count)")
        print("  resident memory after \(answers) answers and \(pings) pings: \(Self.residentBytes(process.processIdentifier) / 1024) KiB")
        return cold
    }

    static func spawn(_ path: String, environment: [String: String], log: String) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.environment = environment
        process.standardOutput = FileHandle.nullDevice
        // Its JSON logs and EMF records would drown the figures: they go to a file.
        FileManager.default.createFile(atPath: log, contents: nil)
        process.standardError = FileHandle(forWritingAtPath: log) ?? FileHandle.nullDevice
        try process.run()
        return process
    }

    static func residentBytes(_ pid: Int32) -> Int {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return 0 }
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return (line.split(separator: " ").compactMap { Int($0) }.first ?? 0) * 1024
        }
        return 0
    }

    static func ms(_ d: Duration) -> String {
        String(format: "%.2f ms", Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15)
    }
}

/// A WebSocket client for the benchmark: commands out, decoded events in.
final class BenchSocket: Sendable {
    private let outgoing: AsyncStream<ClientCommand?>.Continuation
    private let incoming: Mutex<[ServerEvent]>
    private let closed = Mutex(false)

    private init(outgoing: AsyncStream<ClientCommand?>.Continuation) {
        self.outgoing = outgoing
        self.incoming = Mutex([])
    }

    static func connect(url: String, token: String) async throws -> BenchSocket {
        let (stream, continuation) = AsyncStream<ClientCommand?>.makeStream()
        let socket = BenchSocket(outgoing: continuation)
        var configuration = WebSocketClientConfiguration()
        configuration.additionalHeaders[.authorization] = "Bearer \(token)"
        configuration.autoPing = .disabled
        var logger = Logger(label: "bench-lambda")
        logger.logLevel = .critical
        Task {
            _ = try? await WebSocketClient.connect(url: url, configuration: configuration, logger: logger) { inbound, outbound, _ in
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        for await command in stream {
                            guard let command else {
                                try await outbound.close(.normalClosure, reason: nil)
                                return
                            }
                            try await outbound.write(.text(String(decoding: command.encoded(), as: UTF8.self)))
                        }
                    }
                    for try await message in inbound.messages(maxSize: 1 << 20) {
                        if case .text(let text) = message, let event = try? ServerEvent.decode(text) {
                            socket.incoming.withLock { $0.append(event) }
                        }
                    }
                    group.cancelAll()
                }
            }
            socket.closed.withLock { $0 = true }
        }
        return socket
    }

    func send(_ command: ClientCommand) { outgoing.yield(command) }

    func close() {
        outgoing.yield(nil)
        outgoing.finish()
    }

    func next(timeout: Duration) async throws -> ServerEvent {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let event = incoming.withLock({ $0.isEmpty ? nil : $0.removeFirst() }) { return event }
            if closed.withLock({ $0 }) { throw BenchError("the WebSocket closed") }
            try await Task.sleep(for: .microseconds(100))
        }
        throw BenchError("no event within \(timeout)")
    }
}
