import Foundation
import HTTPTypes
import Logging
import MedViewCore
import MedViewModels
import MedViewPostgres
import MedViewProtocol
import MedViewServer
import MedViewStore
import NIOCore
import Testing
import MedViewTestSupport

/// The application `medview serve` runs, on PostgreSQL (needs `MEDVIEW_TEST_DATABASE_URL`).
@Suite(.enabled(if: ProcessInfo.processInfo.environment["MEDVIEW_TEST_DATABASE_URL"] != nil, "MEDVIEW_TEST_DATABASE_URL is not set"), .timeLimit(.minutes(2)))
struct PostgresServerTests {
    /// Settings for a schema of this test's own; the schema is dropped afterwards.
    func withDatabase(_ body: (PostgresSettings) async throws -> Void) async throws {
        let url = try #require(ProcessInfo.processInfo.environment["MEDVIEW_TEST_DATABASE_URL"])
        var settings = try PostgresSettings.parse(url: url, poolSize: 3)
        settings.schema = "medview_server_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
        do {
            try await body(settings)
        } catch {
            try? await PostgresConversationStore.dropSchema(settings: settings, logger: Logger(label: "test"))
            throw error
        }
        try await PostgresConversationStore.dropSchema(settings: settings, logger: Logger(label: "test"))
    }

    @Test("on PostgreSQL, answers are stored, survive a restart, resume from the stored log, and /readyz is ready")
    func restartOnPostgres() async throws {
        try await withDatabase { settings in
            let directory = NSTemporaryDirectory() + "medview-pg-" + UUID().uuidString
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let http = HTTPTests()
            let (conversation, events) = try await LiveServer.with(dataDirectory: directory, configure: { $0.database = settings }) { server in
                let ready = try await server.request("/readyz", user: nil)
                #expect(ready.status == .ok)
                #expect(json(ready)["store"] as? String == "ok")
                let conversation = try await http.createConversation(server, user: "alice")
                let events = parseSSE(String(buffer: try await http.sse(server, conversation: conversation, user: "alice", id: "m1", text: "Remember me").body)).map(\.event)
                return (conversation, events)
            }
            #expect(!FileManager.default.fileExists(atPath: directory + "/medview.sqlite"))
            let streamId = try #require(events.first?.streamId)
            try await LiveServer.with(dataDirectory: directory, configure: { $0.database = settings }) { server in
                let messages = json(try await server.request("/v1/conversations/\(conversation)/messages", user: "alice"))["messages"] as? [[String: Any]]
                #expect(messages?.first?["text"] as? String == "Remember me")
                #expect(messages?.last?["status"] as? String == "complete")
                let resumed = try await server.request("/v1/streams/\(streamId)", user: "alice", headers: [.accept: "text/event-stream", HTTPField.Name("Last-Event-ID")!: "1"])
                #expect(parseSSE(String(buffer: resumed.body)).map(\.event) == Array(events.dropFirst(2)))
                let again = parseSSE(String(buffer: try await http.sse(server, conversation: conversation, user: "alice", id: "m1", text: "Remember me").body)).map(\.event)
                guard case .ack(let ack) = again.first else { Issue.record("expected ack"); return }
                #expect(ack.duplicate == true && ack.streamId == streamId)
            }
        }
    }

    @Test("on PostgreSQL the server encrypts by default and audits into the database; keys rotate and the audit log verifies against it")
    func encryptedAndAuditedOnPostgres() async throws {
        try await withDatabase { settings in
            let directory = NSTemporaryDirectory() + "medview-pg-" + UUID().uuidString
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let http = HTTPTests()
            let question = "Is grapefruit safe with my felodipine for hypertension?"
            let model = ScriptedModel(configuration: .init(deltaDelay: .milliseconds(1), reply: "Grapefruit raises felodipine levels; ask your pharmacist."))
            let conversation = try await LiveServer.with(dataDirectory: directory, model: model, configure: { $0.database = settings }) { server in
                let encrypted = try #require(server.chat.store as? EncryptedConversationStore)
                // Encryption wraps the database store, timed by the metered store (store latency).
                #expect((encrypted.base as? MeteredConversationStore)?.base is PostgresConversationStore)
                let conversation = try await http.createConversation(server, user: "alice")
                #expect(String(buffer: try await http.sse(server, conversation: conversation, user: "alice", id: "m1", text: question).body).contains("pharmacist"))
                let messages = json(try await server.request("/v1/conversations/\(conversation)/messages", user: "alice"))["messages"] as? [[String: Any]]
                #expect(messages?.first?["text"] as? String == question)
                // What PostgreSQL holds is ciphertext.
                let stored = try await encrypted.base.messages(conversationId: conversation, userId: "alice")
                #expect(stored.count == 2 && stored.allSatisfy { $0.text.hasPrefix("ev1:") })
                return conversation
            }
            var configuration = ServerConfiguration(host: "127.0.0.1", port: 0, dataDirectory: directory)
            configuration.database = settings
            let logger = Logger(label: "test")
            let entries = try await readAuditLog(configuration: configuration, since: nil, logger: logger)
            #expect(AuditChain.verify(entries) == .intact(count: entries.count))
            #expect(entries.contains { $0.event.action == .messageSent && $0.event.userId == "alice" && $0.event.record == conversation })
            #expect(!FileManager.default.fileExists(atPath: directory + "/audit.sqlite"), "the audit log is in the database, not a per-task file")

            // A new master key and `keys rotate` against the database; the rotation is audited.
            let oldMaster = try LocalKeyProvider.load(path: directory + "/master.key").currentMasterKeyId
            let newMaster = try LocalKeyProvider.addMasterKey(path: directory + "/master.key")
            let summary = try await rotateDataKeys(configuration: configuration, actor: "ops", logger: logger)
            #expect(summary.report == .init(rewrapped: 1, skipped: 0) && summary.masterKeyId == newMaster)
            let after = try await readAuditLog(configuration: configuration, since: nil, logger: logger)
            #expect(AuditChain.verify(after) == .intact(count: entries.count + 1))
            let rotation = try #require(after.last?.event)
            #expect(rotation.action == .keysRotated && rotation.outcome == .success && rotation.userId == "operator:ops" && rotation.record == "master_key:\(newMaster)")
            #expect(oldMaster != newMaster)

            // The server reads the old conversation through the re-wrapped key.
            try await LiveServer.with(dataDirectory: directory, model: model, configure: { $0.database = settings }) { server in
                let messages = json(try await server.request("/v1/conversations/\(conversation)/messages", user: "alice"))["messages"] as? [[String: Any]]
                #expect(messages?.first?["text"] as? String == question)
            }
            #expect(try await readAuditLog(configuration: configuration, since: nil, logger: logger).count > entries.count + 1)

            // A rotation that stops (a key file that cannot open the database's keys) is audited as failed.
            var wrongKeys = configuration
            wrongKeys.encryption = EncryptionSettings(provider: .local(masterKeyFile: directory + "/other.key"))
            _ = try LocalKeyProvider.load(path: directory + "/other.key")
            await #expect(throws: OperatorToolError.self) { try await rotateDataKeys(configuration: wrongKeys, actor: "ops", logger: logger) }
            let failed = try #require(try await readAuditLog(configuration: configuration, since: nil, logger: logger).last?.event)
            #expect(failed.action == .keysRotated && failed.outcome == .failed && failed.reason == "unwrap_failed")
            // A missing key file is refused before anything is done (rotation never creates one).
            wrongKeys.encryption = EncryptionSettings(provider: .local(masterKeyFile: directory + "/missing.key"))
            await #expect(throws: OperatorToolError.masterKeyFileMissing(path: directory + "/missing.key")) {
                try await rotateDataKeys(configuration: wrongKeys, actor: "ops", logger: logger)
            }
            #expect(!FileManager.default.fileExists(atPath: directory + "/missing.key"))
        }
    }

    @Test("on PostgreSQL, a cancelled answer is stored as cancelled with the text that was sent")
    func cancelOnPostgres() async throws {
        // The answer runs in the task the cancel stops: its ending must still reach the database.
        try await withDatabase { settings in
            let directory = NSTemporaryDirectory() + "medview-pg-" + UUID().uuidString
            defer { try? FileManager.default.removeItem(atPath: directory) }
            try await LiveServer.with(dataDirectory: directory, configure: { $0.database = settings }) { server in
                let ws = try await server.connect("alice")
                defer { ws.close() }
                ws.send(.chatSend(ChatSend(id: "m1", text: "[[repeat:100]][[delay:5]]")))
                let a = try #require(ack(try await ws.next()))
                let events = try await ws.readStream(try #require(a.streamId), cancellingAfter: 2)
                guard case .streamEnd(let end) = events.last else { Issue.record("expected stream.end, got \(String(describing: events.last))"); return }
                #expect(end.finishReason == .cancelled)
                let messages = json(try await server.request("/v1/conversations/\(a.conversationId!)/messages", user: "alice"))["messages"] as? [[String: Any]]
                #expect(messages?.last?["status"] as? String == "cancelled")
                #expect(messages?.last?["text"] as? String == chunks(events).map(\.text).joined())
            }
        }
    }

    @Test("a database schema newer than this build stops the start with both versions")
    func refusesNewerSchema() async throws {
        try await withDatabase { settings in
            let future = PostgresMigration.all + [PostgresMigration(version: PostgresMigration.latestVersion + 1, statements: ["SELECT 1"])]
            _ = try await PostgresConversationStore.migrate(settings: settings, credentials: nil, migrations: future, logger: Logger(label: "test"))
            var configuration = ServerConfiguration(host: "127.0.0.1", port: 0, dataDirectory: NSTemporaryDirectory() + "medview-pg-" + UUID().uuidString)
            configuration.database = settings
            do {
                _ = try await buildApplication(configuration: configuration, dependencies: .init(model: ScriptedModelStub.model))
                Issue.record("started against a newer schema")
            } catch let error as StartupError {
                #expect(error.description.contains("version \(PostgresMigration.latestVersion + 1)"))
                #expect(error.description.contains("the \(PostgresMigration.latestVersion) this build knows"))
            }
        }
    }
}

/// The scripted model, so that building the application never fetches the local model.
enum ScriptedModelStub {
    static let model: any ChatModel = ScriptedModel(configuration: .init(deltaDelay: .milliseconds(1)))
}
