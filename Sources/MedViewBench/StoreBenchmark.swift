import Foundation
import Logging
import MedViewCore
import MedViewModels
import MedViewPostgres
import MedViewProtocol
import MedViewServer
import MedViewStore
import ServiceLifecycle
import Synchronization

/// `medview bench store`: what durability (the replay log written as it streams) and envelope
/// encryption cost, on SQLite and on PostgreSQL.
///
/// Each configuration runs the application `medview serve` runs (`buildApplication`: the real
/// store, encryption, journal, recovery and services) with the scripted model at zero delay, and
/// drives its engine in-process, so that the figures are the server's own: the transport, which
/// is the same in every configuration, is left out. Per configuration: `sequential` answers one
/// at a time (streams/s at 1, server-added time to first chunk: from the message reaching the
/// engine to its first chunk published, the user message stored before the model was called),
/// in conversations of ten messages, then `rounds` rounds of `concurrent` answers at once (200
/// patients, each continuing one conversation, so a data key is made on the first round only),
/// each answer ending only once its ending is stored. Every configuration is run in the same process, one after the
/// other, alternating, `repeats` times; the best run of each is printed (the least disturbed by
/// the other work on the machine).
public struct StoreBenchmark: Sendable {
    public var databaseURL: String?
    public var sequential: Int
    public var concurrent: Int
    public var rounds: Int
    public var repeats: Int
    /// Messages in one conversation for the conversation-length phase (0 skips it).
    public var conversationLength: Int
    public var print: @Sendable (String) -> Void

    public init(databaseURL: String?, sequential: Int = 300, concurrent: Int = 200, rounds: Int = 5, repeats: Int = 2, conversationLength: Int = 500, print: @escaping @Sendable (String) -> Void) {
        self.conversationLength = conversationLength
        self.databaseURL = databaseURL
        self.sequential = sequential
        self.concurrent = concurrent
        self.rounds = rounds
        self.repeats = repeats
        self.print = print
    }

    struct Mode: Sendable {
        var name: String
        var durable: Bool
        var encrypted: Bool
    }

    struct Result: Sendable {
        var sequentialPerSecond: Double
        var firstChunkSequential: [Duration]
        var concurrentPerSecond: Double
        var firstChunkConcurrent: [Duration]
    }

    static let modes = [
        Mode(name: "off (log at the end, no encryption)", durable: false, encrypted: false),
        Mode(name: "durable log", durable: true, encrypted: false),
        Mode(name: "encryption", durable: false, encrypted: true),
        Mode(name: "durable log + encryption", durable: true, encrypted: true),
    ]

    public func run() async throws {
        print("medview bench store: the engine in-process on the real stores (scripted model, zero delay), \(sequential) answers one at a time (conversations of 10), then \(rounds) rounds of \(concurrent) patients at once (one conversation each); best of \(repeats)")
        var stores = ["sqlite"]
        if databaseURL != nil { stores.append("postgresql") } else { print("  (PostgreSQL skipped: give --database-url or MEDVIEW_DATABASE_URL)") }
        for store in stores {
            var best: [Int: Result] = [:]
            for repeatIndex in 0..<repeats {
                for (index, mode) in Self.modes.enumerated() {
                    let result = try await measure(store: store, mode: mode)
                    print("    run \(repeatIndex + 1) \(store) \(mode.name): \(Int(result.sequentialPerSecond)) /s at 1, \(Int(result.concurrentPerSecond)) /s at \(concurrent)")
                    if let previous = best[index], previous.concurrentPerSecond + previous.sequentialPerSecond >= result.concurrentPerSecond + result.sequentialPerSecond { continue }
                    best[index] = result
                }
            }
            print("  \(store)")
            print("    \(pad("configuration", 38)) \(pad("streams/s @1", 13)) \(pad("TTFC p50 @1", 12)) \(pad("p99 @1", 9)) \(pad("streams/s @\(concurrent)", 15)) \(pad("TTFC p50 @\(concurrent)", 14)) p99 @\(concurrent)")
            for (index, mode) in Self.modes.enumerated() {
                guard let r = best[index] else { continue }
                let s = r.firstChunkSequential.sorted(), c = r.firstChunkConcurrent.sorted()
                print("    \(pad(mode.name, 38)) \(pad(String(Int(r.sequentialPerSecond)), 13)) \(pad(Benchmark.ms(Benchmark.pct(s, 0.5)), 12)) \(pad(Benchmark.ms(Benchmark.pct(s, 0.99)), 9)) \(pad(String(Int(r.concurrentPerSecond)), 15)) \(pad(Benchmark.ms(Benchmark.pct(c, 0.5)), 14)) \(Benchmark.ms(Benchmark.pct(c, 0.99)))")
            }
            if store == "sqlite" {
                let times = try await beginTurnPhase().sorted()
                print("    a new turn stored, the SQLite store alone (no encryption, writer as a Service), \(times.count) one at a time: p50 \(Benchmark.ms(Benchmark.pct(times, 0.5))), p90 \(Benchmark.ms(Benchmark.pct(times, 0.9))), p99 \(Benchmark.ms(Benchmark.pct(times, 0.99)))")
            }
            if conversationLength > 1 {
                let (early, late) = try await lengthPhase(store: store)
                print("    one conversation of \(conversationLength) messages (durable log + encryption): first chunk p50 of messages 1-20 \(Benchmark.ms(Benchmark.pct(early.sorted(), 0.5))), of the last 20 \(Benchmark.ms(Benchmark.pct(late.sorted(), 0.5))) (aim: within 10 %)")
            }
            if let off = best[0], let on = best[3] {
                let costAt1 = 1 - on.sequentialPerSecond / off.sequentialPerSecond
                let costAtN = 1 - on.concurrentPerSecond / off.concurrentPerSecond
                let p50Off = Benchmark.pct(off.firstChunkSequential.sorted(), 0.5), p50On = Benchmark.pct(on.firstChunkSequential.sorted(), 0.5)
                print("    cost of durability + encryption: throughput \(percent(costAt1)) at 1, \(percent(costAtN)) at \(concurrent) (aim: under 15 %); first-chunk p50 at 1: \(Benchmark.ms(p50Off)) -> \(Benchmark.ms(p50On)) (aim: no increase)")
            }
        }
    }

    private func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text : text + String(repeating: " ", count: width - text.count)
    }

    private func percent(_ fraction: Double) -> String {
        String(format: "%.1f %%", fraction * 100)
    }

    /// One configuration: a fresh data directory (and PostgreSQL schema), the application's
    /// services running, the two phases, then a graceful shutdown.
    private func measure(store: String, mode: Mode) async throws -> Result {
        try await withApplication(store: store, mode: mode) { chat in try await phases(chat) }
    }

    /// First-chunk times of the first and the last 20 messages of one long conversation.
    private func lengthPhase(store: String) async throws -> ([Duration], [Duration]) {
        try await withApplication(store: store, mode: Self.modes[3]) { chat in
            var firsts: [Duration] = []
            var conversation: String?
            for i in 0..<conversationLength {
                let (first, id) = try await Self.answer(chat, user: "long", id: "l\(i)", conversationId: conversation)
                conversation = id
                firsts.append(first)
            }
            return (Array(firsts.prefix(20)), Array(firsts.suffix(20)))
        }
    }

    /// How long `beginTurn` takes on its own: the SQLite store, its writer running as a
    /// `Service` as in the application, one new turn at a time in conversations of ten (the
    /// first turn of each opens it), after a warm-up.
    private func beginTurnPhase() async throws -> [Duration] {
        let directory = NSTemporaryDirectory() + "medview-bench-begin-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var logger = Logger(label: "medview-bench")
        logger.logLevel = .error
        let store = try await SQLiteConversationStore.open(path: directory + "/store.sqlite", logger: logger)
        let group = ServiceGroup(configuration: .init(services: [.init(service: store.writer)], logger: logger))
        let running = Task { try await group.run() }
        defer { running.cancel() }
        while !store.writer.isRunningAsService { try await Task.sleep(for: .milliseconds(1)) }
        let clock = ContinuousClock()
        var times: [Duration] = []
        var conversation = ""
        do {
            for i in 0..<(200 + 2000) {
                let now = Date()
                let newConversation = i % 10 == 0 ? Conversation(id: "c\(i)", userId: "bench", title: "Sleep", createdAt: now, updatedAt: now) : nil
                if let newConversation { conversation = newConversation.id }
                let turn = Turn(
                    streamId: "s\(i)", userId: "bench", conversationId: conversation, clientMessageId: "m\(i)",
                    userMessage: StoredMessage(id: "u\(i)", conversationId: conversation, userId: "bench", role: .user, text: "How can I sleep better?", status: .complete, streamId: "s\(i)", createdAt: now),
                    assistantMessage: StoredMessage(id: "a\(i)", conversationId: conversation, userId: "bench", role: .assistant, text: "", status: .streaming, streamId: "s\(i)", createdAt: now),
                    events: [], ownerInstanceId: "bench"
                )
                let started = clock.now
                guard case .created = try await store.beginTurn(turn, newConversation: newConversation) else { throw BenchError("turn \(i) was not created") }
                if i >= 200 { times.append(clock.now - started) }
            }
        } catch {
            await group.triggerGracefulShutdown()
            _ = try? await running.value
            throw error
        }
        await group.triggerGracefulShutdown()
        _ = try? await running.value
        return times
    }

    private func withApplication<T: Sendable>(store: String, mode: Mode, _ body: @Sendable (ChatService) async throws -> T) async throws -> T {
        let directory = NSTemporaryDirectory() + "medview-bench-store-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var chat = ChatConfiguration()
        chat.usageLimits = nil
        chat.maxActiveStreamsPerUser = 100_000
        var configuration = ServerConfiguration(host: "127.0.0.1", port: 0, dataDirectory: directory, model: "scripted", chat: chat)
        configuration.limits.maxConnectionsPerUser = 100_000
        configuration.encryption = mode.encrypted ? EncryptionSettings() : EncryptionSettings(provider: .off)
        configuration.durability.journalInterval = mode.durable ? .milliseconds(20) : nil
        var schemaSettings: PostgresSettings?
        if store == "postgresql", let databaseURL {
            var settings = try PostgresSettings.parse(url: databaseURL, poolSize: 10)
            settings.schema = "medview_bench_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(16)
            configuration.database = settings
            schemaSettings = settings
        }
        var logger = Logger(label: "medview-bench")
        logger.logLevel = .error
        let model = ScriptedModel(configuration: .init(deltaDelay: .zero))
        let app = try await buildApplication(configuration: configuration, dependencies: .init(model: model, logger: logger))
        let group = ServiceGroup(configuration: .init(services: [.init(service: app)], logger: logger))
        let running = Task { try await group.run() }
        do {
            let result = try await body(app.chat)
            await group.triggerGracefulShutdown()
            _ = try? await running.value
            if let schemaSettings { try? await PostgresConversationStore.dropSchema(settings: schemaSettings, logger: logger) }
            return result
        } catch {
            await group.triggerGracefulShutdown()
            _ = try? await running.value
            if let schemaSettings { try? await PostgresConversationStore.dropSchema(settings: schemaSettings, logger: logger) }
            throw error
        }
    }

    private func phases(_ chat: ChatService) async throws -> Result {
        let clock = ContinuousClock()
        // Warm-up: connections, statements, caches.
        for i in 0..<20 { _ = try await Self.answer(chat, user: "warm", id: "w\(i)", conversationId: nil) }
        var firsts: [Duration] = []
        let started = clock.now
        var conversation: String?
        for i in 0..<sequential {
            // Conversations of ten messages, as the peers' load generator makes them.
            let (first, id) = try await Self.answer(chat, user: "seq", id: "s\(i)", conversationId: i % 10 == 0 ? nil : conversation)
            conversation = id
            firsts.append(first)
        }
        let sequentialPerSecond = Double(sequential) / Benchmark.seconds(clock.now - started)
        var concurrentFirsts: [Duration] = []
        let concurrentStarted = clock.now
        // Each patient keeps one conversation across the rounds (the first round starts it).
        var conversations: [String?] = Array(repeating: nil, count: concurrent)
        for round in 0..<rounds {
            let current = conversations
            let results = try await withThrowingTaskGroup(of: (Int, Duration, String).self) { group in
                for user in 0..<concurrent {
                    group.addTask {
                        let (first, id) = try await Self.answer(chat, user: "u\(user)", id: "r\(round)", conversationId: current[user])
                        return (user, first, id)
                    }
                }
                var all: [(Int, Duration, String)] = []
                for try await result in group { all.append(result) }
                return all
            }
            for (user, first, id) in results {
                concurrentFirsts.append(first)
                conversations[user] = id
            }
        }
        let concurrentPerSecond = Double(rounds * concurrent) / Benchmark.seconds(clock.now - concurrentStarted)
        return Result(sequentialPerSecond: sequentialPerSecond, firstChunkSequential: firsts, concurrentPerSecond: concurrentPerSecond, firstChunkConcurrent: concurrentFirsts)
    }

    /// Sends one message and reads its answer to the end; returns the time from the send to the
    /// first chunk published.
    private static func answer(_ chat: ChatService, user: String, id: String, conversationId: String?) async throws -> (Duration, String) {
        let clock = ContinuousClock()
        let sent = clock.now
        let result = try await chat.send(userId: user, conversationId: conversationId, clientMessageId: id, text: "How can I sleep better?")
        var first: Duration?
        var seq = 0
        while true {
            switch await result.stream.next(after: seq) {
            case .event(let event):
                seq = event.seq ?? seq + 1
                if first == nil, case .streamChunk = event { first = clock.now - sent }
                if event.isTerminal {
                    guard case .streamEnd = event else { throw BenchError("answer \(id) ended with \(event)") }
                    return (first ?? clock.now - sent, result.conversationId)
                }
            case .finished, .timeout:
                return (first ?? clock.now - sent, result.conversationId)
            }
        }
    }
}
