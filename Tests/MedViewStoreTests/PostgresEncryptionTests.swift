import Foundation
import MedViewAWS
import MedViewCore
@testable import MedViewPostgres
import MedViewStore
import PostgresNIO
import Testing

/// Words of the patient and the model that must never reach PostgreSQL in clear. No other test
/// writes them, so the scan of the whole throwaway cluster's files (shared by every test of the
/// run) finds them only if this store leaked them.
private let secretWords = ["metoprolol", "palpitations", "endocrinologist", "levothyroxine", "tachycardia", "insomnia"]

/// One conversation with a finished turn whose title, messages and replay log hold `secretWords`.
@discardableResult
private func writeConversation(_ store: any ConversationStore, userId: String = "u_alice", title: String = "Metoprolol palpitations") async throws -> (Conversation, Turn) {
    let conversation = Sample.conversation(userId: userId, title: title)
    let turn = Sample.turn(conversationId: conversation.id, userId: userId, text: "My endocrinologist raised my levothyroxine and now I have palpitations")
    #expect(try await store.beginTurn(turn, newConversation: conversation) == .created)
    let answer = "Too much levothyroxine can cause tachycardia and insomnia."
    try await store.finishTurn(TurnCompletion(
        streamId: turn.streamId, userId: userId, assistantText: answer, status: .complete,
        events: [
            StreamLogEntry(seq: 1, json: #"{"type":"stream.chunk","seq":1,"text":"Too much levothyroxine "}"#),
            StreamLogEntry(seq: 2, json: #"{"type":"stream.chunk","seq":2,"text":"can cause tachycardia and insomnia."}"#),
        ]
    ))
    return (conversation, turn)
}

private func expectEncryptionError<T>(_ expected: EncryptionError, _ body: () async throws -> T) async {
    do {
        _ = try await body()
        Issue.record("expected \(expected), got a value")
    } catch let error as EncryptionError {
        #expect(error == expected)
    } catch {
        Issue.record("expected \(expected), got \(error)")
    }
}

/// Envelope encryption on PostgreSQL: the data keys in the same database (`data_keys`), the
/// ciphertext in the store's tables. Needs `MEDVIEW_TEST_DATABASE_URL` (scripts/test.sh).
@Suite("Envelope encryption on PostgreSQL", .enabled(if: TestDatabase.isConfigured, "MEDVIEW_TEST_DATABASE_URL is not set"), .timeLimit(.minutes(3)))
struct PostgresEncryptionTests {
    @Test("the PostgreSQL data key store passes the DataKeyStore conformance checks")
    func dataKeyStoreConformance() async throws {
        try await withEncryptedPostgres { store, _ in
            try await DataKeyStoreConformance.run(store.keys)
        }
    }

    @Test("pg_dump of the database after a conversation holds none of the patient's or the model's words")
    func pgDumpHoldsNoPlaintext() async throws {
        try await withEncryptedPostgres { store, _ in
            let (conversation, turn) = try await writeConversation(store.encrypted)
            // It all reads back in clear through the store, also through a ring with nothing cached.
            let reader = store.fresh()
            #expect(try await reader.conversation(id: conversation.id, userId: "u_alice")?.title == "Metoprolol palpitations")
            let read = try #require(try await reader.turn(streamId: turn.streamId, userId: "u_alice"))
            #expect(read.userMessage.text.contains("levothyroxine"))
            #expect(read.assistantMessage.text == "Too much levothyroxine can cause tachycardia and insomnia.")
            #expect(read.events.map(\.json).joined().contains("tachycardia"))

            let dump = try PostgresDump.dump(store.settings)
            let text = String(decoding: dump, as: UTF8.self).lowercased()
            // The scan sees the rows: the ids and the envelopes are there.
            #expect(text.contains(conversation.id.lowercased()) && text.contains(turn.streamId.lowercased()))
            #expect(text.contains("ev1:1:"))
            #expect(text.contains("copy") && text.contains("data_keys"))
            for word in secretWords {
                #expect(!text.contains(word), "\(word) found in the pg_dump output")
            }

            // The cluster's raw files too (pages and WAL), after a checkpoint wrote the pages out.
            try await store.sql("CHECKPOINT")
            if let files = PostgresClusterFiles.files(containingAnyOf: secretWords + secretWords.map(\.capitalized)) {
                #expect(files.isEmpty, "patient or model words in the cluster's files: \(files)")
                // The scan does see the rows: the conversation id is in the pages or the WAL.
                #expect(PostgresClusterFiles.files(containingAnyOf: [conversation.id])?.isEmpty == false)
            }
        }
    }

    @Test("tampered ciphertext and a value that is not an envelope are typed errors")
    func tamperedCiphertext() async throws {
        try await withEncryptedPostgres { store, _ in
            let (conversation, turn) = try await writeConversation(store.encrypted)
            let stored = try #require(try await store.strings("SELECT text FROM messages WHERE id = \(turn.userMessage.id)").first)
            let parts = stored.split(separator: ":")
            var bytes = try #require(Data(base64Encoded: String(parts[2])))
            bytes[bytes.count / 2] ^= 0x01
            try await store.sql("UPDATE messages SET text = \("\(parts[0]):\(parts[1]):\(bytes.base64EncodedString())") WHERE id = \(turn.userMessage.id)")
            await expectEncryptionError(.authenticationFailed) { try await store.fresh().messages(conversationId: conversation.id, userId: "u_alice") }
            // A tampered stream event, too.
            let event = try #require(try await store.strings("SELECT json FROM stream_events WHERE stream_id = \(turn.streamId) AND seq = 2").first)
            try await store.sql("UPDATE stream_events SET json = \(String(event.dropLast(4)) + "AAA=") WHERE stream_id = \(turn.streamId) AND seq = 2")
            await #expect(throws: EncryptionError.self) { try await store.fresh().turn(streamId: turn.streamId, userId: "u_alice") }
            try await store.sql("UPDATE conversations SET title = 'ev1:x:!!' WHERE id = \(conversation.id)")
            await expectEncryptionError(.malformedEnvelope) { try await store.fresh().conversation(id: conversation.id, userId: "u_alice") }
        }
    }

    @Test("ciphertext copied into another row, field or conversation fails to decrypt with a typed error")
    func wrongAAD() async throws {
        try await withEncryptedPostgres { store, _ in
            let (conversation, first) = try await writeConversation(store.encrypted)
            let second = Sample.turn(conversationId: conversation.id, userId: "u_alice", text: "Another question", at: 5)
            #expect(try await store.encrypted.beginTurn(second, newConversation: nil) == .created)
            let (other, otherTurn) = try await writeConversation(store.encrypted, title: "Other")

            // The first user message's ciphertext into the second (same conversation, same key).
            let text = try #require(try await store.strings("SELECT text FROM messages WHERE id = \(first.userMessage.id)").first)
            try await store.sql("UPDATE messages SET text = \(text) WHERE id = \(second.userMessage.id)")
            await expectEncryptionError(.authenticationFailed) { try await store.fresh().turn(streamId: second.streamId, userId: "u_alice") }
            // One conversation's title into another's (another conversation, another key).
            let title = try #require(try await store.strings("SELECT title FROM conversations WHERE id = \(conversation.id)").first)
            try await store.sql("UPDATE conversations SET title = \(title) WHERE id = \(other.id)")
            await expectEncryptionError(.authenticationFailed) { try await store.fresh().conversation(id: other.id, userId: "u_alice") }
            // A replay-log event into another position of the same stream.
            let event = try #require(try await store.strings("SELECT json FROM stream_events WHERE stream_id = \(otherTurn.streamId) AND seq = 1").first)
            try await store.sql("UPDATE stream_events SET json = \(event) WHERE stream_id = \(otherTurn.streamId) AND seq = 2")
            await expectEncryptionError(.authenticationFailed) { try await store.fresh().turn(streamId: otherTurn.streamId, userId: "u_alice") }
            // The untouched rows still read.
            #expect(try await store.fresh().conversation(id: conversation.id, userId: "u_alice")?.title == "Metoprolol palpitations")
            #expect(try await store.fresh().turn(streamId: first.streamId, userId: "u_alice")?.assistantMessage.text.contains("tachycardia") == true)
        }
    }

    @Test("a missing data key is a typed error")
    func missingKey() async throws {
        try await withEncryptedPostgres { store, _ in
            let (conversation, turn) = try await writeConversation(store.encrypted)
            try await store.sql("DELETE FROM data_keys WHERE conversation_id = \(conversation.id)")
            await expectEncryptionError(.keyNotFound) { try await store.fresh().conversation(id: conversation.id, userId: "u_alice") }
            await expectEncryptionError(.keyNotFound) { try await store.fresh().turn(streamId: turn.streamId, userId: "u_alice") }
        }
    }

    @Test("rotation on PostgreSQL: new keys from the new master key, old records readable, data keys re-wrapped without re-encrypting")
    func rotation() async throws {
        try await withEncryptedPostgres { store, directory in
            let keyFile = directory.path("master.key")
            let oldMaster = store.provider.currentMasterKeyId
            let (old, oldTurn) = try await writeConversation(store.encrypted, title: "Before rotation")
            let ciphertextBefore = try await rawTexts(store, conversationId: old.id)
            #expect(ciphertextBefore.count == 5)

            let newMaster = try LocalKeyProvider.addMasterKey(path: keyFile)
            let provider = try LocalKeyProvider.load(path: keyFile)
            let rotated = store.fresh(provider: provider)
            #expect(try await rotated.conversation(id: old.id, userId: "u_alice")?.title == "Before rotation")
            let (fresh, _) = try await writeConversation(rotated, title: "After rotation")
            #expect(try await store.keys.keys(conversationId: fresh.id, userId: "u_alice").map(\.masterKeyId) == [newMaster])
            #expect(try await store.keys.keys(conversationId: old.id, userId: "u_alice").map(\.masterKeyId) == [oldMaster])

            #expect(try await KeyRotation.rotate(keyStore: store.keys, provider: provider) == .init(rewrapped: 1, skipped: 0))
            #expect(try await KeyRotation.rotate(keyStore: store.keys, provider: provider) == .init(rewrapped: 0, skipped: 0))
            #expect(try await store.keys.keys(conversationId: old.id, userId: "u_alice").map(\.masterKeyId) == [newMaster])
            #expect(try await rawTexts(store, conversationId: old.id) == ciphertextBefore, "rotation must not re-encrypt messages")

            // The old master key retired: everything still reads, since nothing needs it now.
            try dropMasterKey(oldMaster, from: keyFile)
            let retired = store.fresh(provider: try LocalKeyProvider.load(path: keyFile))
            #expect(try await retired.conversation(id: old.id, userId: "u_alice")?.title == "Before rotation")
            #expect(try await retired.turn(streamId: oldTurn.streamId, userId: "u_alice")?.assistantMessage.text.contains("tachycardia") == true)
            #expect(try await retired.conversation(id: fresh.id, userId: "u_alice")?.title == "After rotation")
        }
    }

    @Test("erasure on PostgreSQL: the key row is gone; a copy taken before reads nothing with the live keys, and nothing at all once the old master key is retired")
    func erasure() async throws {
        try await withEncryptedPostgres { store, directory in
            let keyFile = directory.path("master.key")
            let oldMaster = store.provider.currentMasterKeyId
            let (conversation, turn) = try await writeConversation(store.encrypted)
            let (kept, _) = try await writeConversation(store.encrypted, title: "Kept")
            // A copy of the whole schema taken before the delete, as a backup would be: the
            // conversation tables and, since they share the database, the wrapped keys too.
            let backupSettings = try await copySchema(store)
            let backup = try await EncryptedPostgres.open(settings: backupSettings, provider: store.provider)
            do {
                #expect(try await store.encrypted.deleteConversation(id: conversation.id, userId: "u_alice"))
                #expect(try await store.keys.keys(conversationId: conversation.id, userId: "u_alice").isEmpty)
                #expect(try await store.strings("SELECT conversation_id FROM data_keys WHERE conversation_id = \(conversation.id)").isEmpty)
                #expect(try await store.strings("SELECT id FROM messages WHERE conversation_id = \(conversation.id)").isEmpty)
                #expect(try await store.fresh().conversation(id: kept.id, userId: "u_alice")?.title == "Kept")

                // The copy's ciphertext with the live keys: the key is gone.
                let withLiveKeys = EncryptedConversationStore(base: backup.postgres, ring: DataKeyRing(provider: store.provider, keyStore: store.keys))
                #expect(try await backup.postgres.conversation(id: conversation.id, userId: "u_alice") != nil, "the copy holds the ciphertext")
                await expectEncryptionError(.keyNotFound) { try await withLiveKeys.conversation(id: conversation.id, userId: "u_alice") }
                await expectEncryptionError(.keyNotFound) { try await withLiveKeys.turn(streamId: turn.streamId, userId: "u_alice") }

                // The copy with its own keys reads while the old master key lives: the bound of
                // erasure is the backup's retention or the old master key's retirement.
                #expect(try await backup.fresh().conversation(id: conversation.id, userId: "u_alice")?.title == "Metoprolol palpitations")
                try LocalKeyProvider.addMasterKey(path: keyFile)
                let current = try LocalKeyProvider.load(path: keyFile)
                #expect(try await KeyRotation.rotate(keyStore: store.keys, provider: current).rewrapped == 1)
                try dropMasterKey(oldMaster, from: keyFile)
                let afterRetirement = try LocalKeyProvider.load(path: keyFile)
                await #expect(throws: EncryptionError.self) { try await backup.fresh(provider: afterRetirement).conversation(id: conversation.id, userId: "u_alice") }
                #expect(try await store.fresh(provider: afterRetirement).conversation(id: kept.id, userId: "u_alice")?.title == "Kept")
            } catch {
                try? await backup.close()
                try? await backup.dropSchema()
                throw error
            }
            try await backup.close()
            try await backup.dropSchema()
        }
    }

    @Test("KMS (moto) on PostgreSQL: stored encrypted, read back, rotated to a second KMS key")
    func kmsOnPostgres() async throws {
        let moto = try await MotoServer.start()
        defer { moto.stop() }
        let credentials = AWSCachedCredentials(EnvironmentCredentialProvider(environment: [
            "AWS_ACCESS_KEY_ID": "AKIDMEDVIEWTEST", "AWS_SECRET_ACCESS_KEY": "medview-test-secret",
        ]))
        let client = KMSClient(region: "us-east-1", endpoint: moto.endpoint, credentials: credentials)
        let first = KMSKeyProvider(keyId: try await client.createKey(description: "medview pg first"), client: client)
        try await withEncryptedPostgres(provider: first) { store, _ in
            let (conversation, turn) = try await writeConversation(store.encrypted)
            #expect(try await store.postgres.conversation(id: conversation.id, userId: "u_alice")?.title.hasPrefix("ev1:") == true)
            #expect(try await store.keys.keys(conversationId: conversation.id, userId: "u_alice").map(\.provider) == ["kms"])
            #expect(try await store.fresh().turn(streamId: turn.streamId, userId: "u_alice")?.userMessage.text.contains("levothyroxine") == true)
            let text = String(decoding: try PostgresDump.dump(store.settings), as: UTF8.self).lowercased()
            for word in secretWords { #expect(!text.contains(word), "\(word) found in the pg_dump output") }

            let second = KMSKeyProvider(keyId: try await client.createKey(description: "medview pg second"), client: client)
            #expect(try await KeyRotation.rotate(keyStore: store.keys, provider: second) == .init(rewrapped: 1, skipped: 0))
            #expect(try await store.keys.keys(conversationId: conversation.id, userId: "u_alice").map(\.masterKeyId) == [second.currentMasterKeyId])
            #expect(try await store.fresh(provider: second).conversation(id: conversation.id, userId: "u_alice")?.title == "Metoprolol palpitations")
        }
    }

    /// The conversation's stored title, message texts and event payloads, as stored.
    private func rawTexts(_ store: EncryptedPostgres, conversationId: String) async throws -> [String] {
        let title = try await store.strings("SELECT title FROM conversations WHERE id = \(conversationId)")
        let texts = try await store.strings("SELECT text FROM messages WHERE conversation_id = \(conversationId) ORDER BY seq")
        let events = try await store.strings("SELECT json FROM stream_events WHERE stream_id IN (SELECT stream_id FROM turns WHERE conversation_id = \(conversationId)) ORDER BY stream_id, seq")
        return title + texts + events
    }

    /// Copies every table of `store`'s schema into a new schema (a backup taken now); returns its settings.
    private func copySchema(_ store: EncryptedPostgres) async throws -> PostgresSettings {
        var settings = try TestDatabase.freshSettings()
        let source = try #require(store.settings.schema)
        let target = try #require(settings.schema)
        settings.schema = target
        try await store.sql(PostgresQuery(unsafeSQL: "CREATE SCHEMA \"\(target)\""))
        for table in ["schema_migrations", "conversations", "turns", "messages", "stream_events", "data_keys", "audit_log"] {
            try await store.sql(PostgresQuery(unsafeSQL: "CREATE TABLE \"\(target)\".\(table) AS TABLE \"\(source)\".\(table)"))
        }
        return settings
    }

    private func dropMasterKey(_ id: String, from path: String) throws {
        let data = try #require(FileManager.default.contents(atPath: path))
        var file = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        var keys = try #require(file["keys"] as? [String: String])
        keys[id] = nil
        file["keys"] = keys
        try JSONSerialization.data(withJSONObject: file).write(to: URL(fileURLWithPath: path))
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path)
    }
}

@Suite("EncryptedConversationStore over PostgresConversationStore conformance", .enabled(if: TestDatabase.isConfigured, "MEDVIEW_TEST_DATABASE_URL is not set"))
struct EncryptedPostgresConformanceTests {
    @Test(arguments: ConversationStoreConformance.Check.allCases)
    func conformance(_ check: ConversationStoreConformance.Check) async throws {
        try await check.run(Stores.encryptedPostgres)
    }
}
