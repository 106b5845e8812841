import Crypto
import Foundation
import MedViewCore
import MedViewStore
import SQLiteNIO
import Testing

/// Words of the patient and the model that must never reach the disk in clear.
private let secretWords = ["zolpidem", "nightmares", "cardiologist", "quetiapine", "orthostatic", "dizziness"]

/// One conversation with a finished turn whose title, messages and replay log hold `secretWords`.
@discardableResult
private func writeConversation(_ store: any ConversationStore, userId: String = "u_alice", title: String = "Zolpidem nightmares") async throws -> (Conversation, Turn) {
    let conversation = Sample.conversation(userId: userId, title: title)
    let turn = Sample.turn(conversationId: conversation.id, userId: userId, text: "My cardiologist prescribed quetiapine and the dizziness is bad")
    #expect(try await store.beginTurn(turn, newConversation: conversation) == .created)
    let answer = "Quetiapine can cause orthostatic hypotension."
    try await store.finishTurn(TurnCompletion(
        streamId: turn.streamId, userId: userId, assistantText: answer, status: .complete,
        events: [StreamLogEntry(seq: 1, json: #"{"type":"stream.chunk","seq":1,"text":"\#(answer)"}"#)]
    ))
    return (conversation, turn)
}

/// Every file of the directory whose name starts with `prefix`, as lowercase bytes.
private func rawBytes(_ directory: TemporaryDirectory, _ names: [String]) -> [(String, [UInt8])] {
    names.compactMap { name in
        FileManager.default.contents(atPath: directory.path(name)).map { (name, Array($0.lowercased())) }
    }
}

private extension Data {
    func lowercased() -> Data { Data(map { (65...90).contains($0) ? $0 + 32 : $0 }) }
}

private func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
    guard !needle.isEmpty, haystack.count >= needle.count else { return false }
    let first = needle[0]
    var i = 0
    while i <= haystack.count - needle.count {
        if haystack[i] == first, Array(haystack[i..<(i + needle.count)]) == needle { return true }
        i += 1
    }
    return false
}

/// Runs `body` on a raw SQLite connection to `path` (to tamper with stored rows as an attacker would).
private func withRawSQLite<T>(_ path: String, _ body: (SQLiteConnection) async throws -> T) async throws -> T {
    let connection = try await SQLiteConnection.open(storage: .file(path: path), logger: testLogger)
    do {
        let result = try await body(connection)
        try await connection.close()
        return result
    } catch {
        try? await connection.close()
        throw error
    }
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

@Suite("Envelope encryption of PHI at rest")
struct EncryptionTests {
    @Test func rawStorageHoldsNoneOfThePatientsOrModelsWords() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try await EncryptedSQLite.open(directory)
        let (conversation, turn) = try await writeConversation(store.encrypted)
        // It all reads back in clear through the store.
        #expect(try await store.encrypted.conversation(id: conversation.id, userId: "u_alice")?.title == "Zolpidem nightmares")
        let read = try #require(try await store.encrypted.turn(streamId: turn.streamId, userId: "u_alice"))
        #expect(read.userMessage.text.contains("quetiapine"))
        #expect(read.assistantMessage.text == "Quetiapine can cause orthostatic hypotension.")
        #expect(read.events.first?.json.contains("orthostatic") == true)

        let files = ["store.sqlite", "store.sqlite-wal", "keys.sqlite", "keys.sqlite-wal"]
        let open = rawBytes(directory, files)
        #expect(open.contains { $0.0 == "store.sqlite-wal" && !$0.1.isEmpty }, "the scan must see the WAL while the store is open")
        try await store.encrypted.close()
        for (name, bytes) in open + rawBytes(directory, files) {
            for word in secretWords {
                #expect(!contains(bytes, Array(word.utf8)), "\(word) found in \(name)")
            }
        }
    }

    @Test func tamperedCiphertextIsATypedError() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        var store = try await EncryptedSQLite.open(directory)
        let (conversation, _) = try await writeConversation(store.encrypted)
        try await store.encrypted.close()
        try await withRawSQLite(directory.path("store.sqlite")) { connection in
            let row = try #require(try await connection.query("SELECT id, text FROM messages WHERE role = 'user'", []).first)
            let stored = try #require(row.column("text")?.string)
            let parts = stored.split(separator: ":")
            var bytes = try #require(Data(base64Encoded: String(parts[2])))
            bytes[bytes.count / 2] ^= 0x01
            let tampered = "\(parts[0]):\(parts[1]):\(bytes.base64EncodedString())"
            _ = try await connection.query("UPDATE messages SET text = ? WHERE id = ?", [.text(tampered), try #require(row.column("id"))])
        }
        store = try await EncryptedSQLite.open(directory)
        await expectEncryptionError(.authenticationFailed) { try await store.encrypted.messages(conversationId: conversation.id, userId: "u_alice") }
        // Not an envelope at all: typed too.
        try await store.encrypted.close()
        try await withRawSQLite(directory.path("store.sqlite")) { connection in
            _ = try await connection.query("UPDATE conversations SET title = 'ev1:x:!!'", [])
        }
        store = try await EncryptedSQLite.open(directory)
        await expectEncryptionError(.malformedEnvelope) { try await store.encrypted.conversation(id: conversation.id, userId: "u_alice") }
        try await store.encrypted.close()
    }

    @Test func ciphertextCopiedIntoAnotherRowFailsToDecrypt() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        var store = try await EncryptedSQLite.open(directory)
        let (conversation, _) = try await writeConversation(store.encrypted)
        let second = Sample.turn(conversationId: conversation.id, userId: "u_alice", text: "Another question", at: 5)
        #expect(try await store.encrypted.beginTurn(second, newConversation: nil) == .created)
        let (other, _) = try await writeConversation(store.encrypted, title: "Other")
        try await store.encrypted.close()

        try await withRawSQLite(directory.path("store.sqlite")) { connection in
            // The first user message's ciphertext into the second user message (same conversation, same key).
            let first = try #require(try await connection.query("SELECT text FROM messages WHERE role = 'user' ORDER BY seq LIMIT 1", []).first?.column("text"))
            _ = try await connection.query("UPDATE messages SET text = ? WHERE id = ?", [first, .text(second.userMessage.id)])
            // The user message into the assistant message's field of the same turn.
            // One conversation's title into another's (another conversation, another key).
            let title = try #require(try await connection.query("SELECT title FROM conversations WHERE id = ?", [.text(conversation.id)]).first?.column("title"))
            _ = try await connection.query("UPDATE conversations SET title = ? WHERE id = ?", [title, .text(other.id)])
        }
        store = try await EncryptedSQLite.open(directory)
        await expectEncryptionError(.authenticationFailed) { try await store.encrypted.turn(streamId: second.streamId, userId: "u_alice") }
        await expectEncryptionError(.authenticationFailed) { try await store.encrypted.conversation(id: other.id, userId: "u_alice") }
        // The untouched rows still read.
        #expect(try await store.encrypted.conversation(id: conversation.id, userId: "u_alice")?.title == "Zolpidem nightmares")
        try await store.encrypted.close()
    }

    @Test func aMissingDataKeyIsATypedError() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        var store = try await EncryptedSQLite.open(directory)
        let (conversation, turn) = try await writeConversation(store.encrypted)
        try await store.encrypted.close()
        try await withRawSQLite(directory.path("keys.sqlite")) { connection in
            _ = try await connection.query("DELETE FROM data_keys", [])
        }
        store = try await EncryptedSQLite.open(directory)
        await expectEncryptionError(.keyNotFound) { try await store.encrypted.conversation(id: conversation.id, userId: "u_alice") }
        await expectEncryptionError(.keyNotFound) { try await store.encrypted.turn(streamId: turn.streamId, userId: "u_alice") }
        try await store.encrypted.close()
    }

    @Test func fieldEnvelopesReadAndWriteTheStoredFormat() throws {
        // The authenticated data as stored envelopes have always bound it: "medview.field.v1", then
        // user, conversation, record, field and key version, each after its length (4 bytes, big-endian).
        func storedFormatAAD(_ b: FieldCipher.Binding, version: Int) -> Data {
            var data = Data("medview.field.v1".utf8)
            for part in [b.userId, b.conversationId, b.recordId, b.field.rawValue, String(version)] {
                let bytes = Data(part.utf8)
                withUnsafeBytes(of: UInt32(bytes.count).bigEndian) { data.append(contentsOf: $0) }
                data.append(bytes)
            }
            return data
        }
        let key = SymmetricKey(size: .bits256)
        for (binding, version, text) in [
            (FieldCipher.Binding(userId: "u_a", conversationId: "c_1", recordId: "r_1", field: .messageText), 1, "chest pain"),
            (FieldCipher.Binding(userId: "ü_🩺", conversationId: "", recordId: String(repeating: "r", count: 300), field: .conversationTitle), 12, "naïve 💧"),
        ] {
            // What this version seals opens with the stored format's data...
            let sealed = try FieldCipher.seal(text, key: key, version: version, binding: binding)
            let combined = try #require(Data(base64Encoded: String(sealed.split(separator: ":")[2])))
            let opened = try AES.GCM.open(AES.GCM.SealedBox(combined: combined), using: key, authenticating: storedFormatAAD(binding, version: version))
            #expect(String(decoding: opened, as: UTF8.self) == text)
            // ...and an envelope sealed with it (as stored before) opens here.
            let old = try AES.GCM.seal(Data(text.utf8), using: key, authenticating: storedFormatAAD(binding, version: version))
            let envelope = "ev1:\(version):" + (try #require(old.combined)).base64EncodedString()
            #expect(try FieldCipher.open(envelope, key: key, binding: binding) == text)
        }
    }

    /// Sealing the same text under the same key and binding again and again gives a different
    /// nonce every time (a repeated nonce under one key would expose the GCM authentication key),
    /// and each envelope opens to the text.
    @Test func everySealDrawsAFreshNonce() throws {
        let key = SymmetricKey(size: .bits256)
        let binding = FieldCipher.Binding(userId: "u_a", conversationId: "c_1", recordId: "r_1", field: .messageText)
        var nonces: Set<Data> = []
        var firstBytes: Set<UInt8> = []
        for _ in 0..<5_000 {
            let sealed = try FieldCipher.seal("chest pain", key: key, version: 1, binding: binding)
            let combined = try #require(Data(base64Encoded: String(sealed.split(separator: ":")[2])))
            let nonce = combined.prefix(12)
            nonces.insert(nonce)
            firstBytes.insert(nonce.first!)
            #expect(try FieldCipher.open(sealed, key: key, binding: binding) == "chest pain")
        }
        #expect(nonces.count == 5_000)
        // The nonce's bytes are random, not a counter: its first byte takes (nearly) every value.
        #expect(firstBytes.count > 240)
    }

    @Test func fieldCipherBindsUserConversationRecordAndField() throws {
        let key = SymmetricKey(size: .bits256)
        let binding = FieldCipher.Binding(userId: "u_a", conversationId: "c_1", recordId: "r_1", field: .messageText)
        let sealed = try FieldCipher.seal("chest pain", key: key, version: 1, binding: binding)
        #expect(!sealed.contains("chest"))
        #expect(try FieldCipher.open(sealed, key: key, binding: binding) == "chest pain")
        for other in [
            FieldCipher.Binding(userId: "u_b", conversationId: "c_1", recordId: "r_1", field: .messageText),
            FieldCipher.Binding(userId: "u_a", conversationId: "c_2", recordId: "r_1", field: .messageText),
            FieldCipher.Binding(userId: "u_a", conversationId: "c_1", recordId: "r_2", field: .messageText),
            FieldCipher.Binding(userId: "u_a", conversationId: "c_1", recordId: "r_1", field: .conversationTitle),
        ] {
            #expect(throws: EncryptionError.authenticationFailed) { try FieldCipher.open(sealed, key: key, binding: other) }
        }
        #expect(throws: EncryptionError.authenticationFailed) { try FieldCipher.open(sealed, key: SymmetricKey(size: .bits256), binding: binding) }
        // The version is authenticated too.
        let relabelled = "ev1:2:" + sealed.split(separator: ":")[2]
        #expect(throws: EncryptionError.authenticationFailed) { try FieldCipher.open(relabelled, key: key, binding: binding) }
        #expect(throws: EncryptionError.malformedEnvelope) { try FieldCipher.open("plain text", key: key, binding: binding) }
        #expect(throws: EncryptionError.malformedEnvelope) { try FieldCipher.open("ev1:1:AAAA", key: key, binding: binding) }
    }

    @Test func theMasterKeyFileIsCreatedOwnerOnlyAndRefusedWhenOthersMayReadIt() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.path("master.key")
        let first = try LocalKeyProvider.load(path: path)
        let mode = try #require(try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int)
        #expect(mode & 0o777 == 0o600)
        #expect(try LocalKeyProvider.load(path: path).currentMasterKeyId == first.currentMasterKeyId)
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: path)
        #expect(throws: EncryptionError.self) { try LocalKeyProvider.load(path: path) }
    }

    @Test func rotationKeepsOldRecordsReadableAndRewrapsWithoutReencrypting() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let keyFile = directory.path("master.key")
        var store = try await EncryptedSQLite.open(directory)
        let oldMaster = store.provider.currentMasterKeyId
        let (old, oldTurn) = try await writeConversation(store.encrypted, title: "Before rotation")
        try await store.encrypted.close()
        let ciphertextBefore = try await rawTexts(directory, conversationId: old.id)

        // A new master key: new data keys come from it, old records stay readable.
        let newMaster = try LocalKeyProvider.addMasterKey(path: keyFile)
        store = try await EncryptedSQLite.open(directory)
        #expect(store.provider.currentMasterKeyId == newMaster)
        #expect(try await store.encrypted.conversation(id: old.id, userId: "u_alice")?.title == "Before rotation")
        let (fresh, _) = try await writeConversation(store.encrypted, title: "After rotation")
        #expect(try await store.keys.keys(conversationId: fresh.id, userId: "u_alice").map(\.masterKeyId) == [newMaster])
        #expect(try await store.keys.keys(conversationId: old.id, userId: "u_alice").map(\.masterKeyId) == [oldMaster])

        // Rotate re-wraps the old data key only; a second run has nothing to do.
        #expect(try await KeyRotation.rotate(keyStore: store.keys, provider: store.provider) == .init(rewrapped: 1, skipped: 0))
        #expect(try await KeyRotation.rotate(keyStore: store.keys, provider: store.provider) == .init(rewrapped: 0, skipped: 0))
        #expect(try await store.keys.keys(conversationId: old.id, userId: "u_alice").map(\.masterKeyId) == [newMaster])
        try await store.encrypted.close()
        #expect(try await rawTexts(directory, conversationId: old.id) == ciphertextBefore, "rotation must not re-encrypt messages")
        #expect(ciphertextBefore.count == 4)

        // With the old master key gone from the file, everything still reads: nothing needs it.
        try dropMasterKey(oldMaster, from: keyFile)
        store = try await EncryptedSQLite.open(directory)
        #expect(try await store.encrypted.conversation(id: old.id, userId: "u_alice")?.title == "Before rotation")
        #expect(try await store.encrypted.turn(streamId: oldTurn.streamId, userId: "u_alice")?.assistantMessage.text == "Quetiapine can cause orthostatic hypotension.")
        #expect(try await store.encrypted.conversation(id: fresh.id, userId: "u_alice")?.title == "After rotation")
        try await store.encrypted.close()
    }

    @Test func withoutRotationARetiredMasterKeyLeavesItsDataKeysUnreadable() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let keyFile = directory.path("master.key")
        var store = try await EncryptedSQLite.open(directory)
        let oldMaster = store.provider.currentMasterKeyId
        let (old, _) = try await writeConversation(store.encrypted)
        try await store.encrypted.close()
        try LocalKeyProvider.addMasterKey(path: keyFile)
        try dropMasterKey(oldMaster, from: keyFile)
        store = try await EncryptedSQLite.open(directory)
        await #expect(throws: EncryptionError.self) { try await store.encrypted.conversation(id: old.id, userId: "u_alice") }
        try await store.encrypted.close()
    }

    @Test func erasureLeavesAnOldCopyOfTheDatabaseUnreadable() async throws {
        let directory = try TemporaryDirectory()
        let backup = try TemporaryDirectory()
        defer { directory.remove(); backup.remove() }
        var store = try await EncryptedSQLite.open(directory)
        let (conversation, turn) = try await writeConversation(store.encrypted)
        let wrapped = try #require(try await store.keys.keys(conversationId: conversation.id, userId: "u_alice").first)
        try await store.encrypted.close()
        // A backup of the conversation database taken before the delete.
        for name in ["store.sqlite", "store.sqlite-wal"] where FileManager.default.fileExists(atPath: directory.path(name)) {
            try FileManager.default.copyItem(atPath: directory.path(name), toPath: backup.path(name))
        }

        store = try await EncryptedSQLite.open(directory)
        #expect(try await store.encrypted.deleteConversation(id: conversation.id, userId: "u_alice"))
        #expect(try await store.keys.keys(conversationId: conversation.id, userId: "u_alice").isEmpty)
        try await store.encrypted.close()
        // The destroyed wrapped key is in neither the key file nor its WAL.
        for (name, bytes) in rawBytes(directory, ["keys.sqlite", "keys.sqlite-wal"]) {
            #expect(!contains(bytes, Array(wrapped.blob.lowercased())), "wrapped key still in \(name)")
        }

        // The old copy still holds the ciphertext, but with the live keys it cannot be read.
        let old = try await SQLiteConversationStore.open(path: backup.path("store.sqlite"), logger: testLogger)
        let keys = try await SQLiteDataKeyStore.open(path: directory.path("keys.sqlite"), logger: testLogger)
        let restored = EncryptedConversationStore(base: old, ring: DataKeyRing(provider: try LocalKeyProvider.load(path: directory.path("master.key")), keyStore: keys))
        #expect(try await old.conversation(id: conversation.id, userId: "u_alice") != nil, "the backup holds the ciphertext")
        await expectEncryptionError(.keyNotFound) { try await restored.conversation(id: conversation.id, userId: "u_alice") }
        await expectEncryptionError(.keyNotFound) { try await restored.messages(conversationId: conversation.id, userId: "u_alice") }
        await expectEncryptionError(.keyNotFound) { try await restored.turn(streamId: turn.streamId, userId: "u_alice") }
        try await restored.close()
    }

    /// The conversation's stored title, message texts and event payloads, as stored.
    private func rawTexts(_ directory: TemporaryDirectory, conversationId: String) async throws -> [String] {
        try await withRawSQLite(directory.path("store.sqlite")) { connection in
            let id: [SQLiteData] = [.text(conversationId)]
            let title = try await connection.query("SELECT title AS value FROM conversations WHERE id = ?", id)
            let texts = try await connection.query("SELECT text AS value FROM messages WHERE conversation_id = ? ORDER BY seq", id)
            let events = try await connection.query("SELECT json AS value FROM stream_events WHERE stream_id IN (SELECT stream_id FROM turns WHERE conversation_id = ?) ORDER BY seq", id)
            return (title + texts + events).compactMap { $0.column("value")?.string }
        }
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

/// A key store that counts its reads and writes (``DataKeyRing``'s round trips to the database).
private actor CountingDataKeyStore: DataKeyStore {
    let inner = InMemoryDataKeyStore()
    private(set) var reads = 0
    private(set) var writes = 0

    func insertOrGet(_ key: WrappedDataKey) async throws -> WrappedDataKey {
        writes += 1
        return try await inner.insertOrGet(key)
    }
    func keys(conversationId: String, userId: String) async throws -> [WrappedDataKey] {
        reads += 1
        return try await inner.keys(conversationId: conversationId, userId: userId)
    }
    func deleteKeys(conversationId: String, userId: String) async throws -> Int { try await inner.deleteKeys(conversationId: conversationId, userId: userId) }
    func keys(notWrappedBy masterKeyId: String, limit: Int) async throws -> [WrappedDataKey] { try await inner.keys(notWrappedBy: masterKeyId, limit: limit) }
    func replaceWrapping(_ key: WrappedDataKey, previousMasterKeyId: String) async throws -> Bool { try await inner.replaceWrapping(key, previousMasterKeyId: previousMasterKeyId) }
    func close() async throws { try await inner.close() }
}

@Suite("Data keys of new conversations")
struct NewConversationKeyTests {
    /// A message that starts a conversation creates its key without first reading the key store
    /// for keys a conversation made a moment ago cannot have (a database round trip fewer); the
    /// next message finds the key in memory; another user's message under the same id is refused.
    @Test func aNewConversationsKeyIsWrittenWithoutReadingTheStoreFirst() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let keys = CountingDataKeyStore()
        let store = EncryptedConversationStore(base: InMemoryConversationStore(), ring: DataKeyRing(provider: try LocalKeyProvider.load(path: directory.path("master.key")), keyStore: keys))
        let conversation = Sample.conversation(userId: "u_alice")
        let first = Sample.turn(conversationId: conversation.id, userId: "u_alice", text: "I take warfarin")
        #expect(try await store.beginTurn(first, newConversation: conversation) == .created)
        #expect(await keys.reads == 0)
        #expect(await keys.writes == 1)

        let second = Sample.turn(conversationId: conversation.id, userId: "u_alice", clientMessageId: "second", text: "and aspirin", at: 1)
        #expect(try await store.beginTurn(second, newConversation: nil) == .created)
        #expect(await keys.writes == 1)
        #expect(try await store.messages(conversationId: conversation.id, userId: "u_alice").map(\.text).contains("and aspirin"))

        // A conversation created on its own (`POST /v1/conversations`) is keyed the same way.
        let created = Sample.conversation(userId: "u_alice", at: 3)
        try await store.createConversation(created)
        #expect(await keys.reads == 0)
        #expect(await keys.writes == 2)
        let inCreated = Sample.turn(conversationId: created.id, userId: "u_alice", text: "is ibuprofen safe", at: 4)
        #expect(try await store.beginTurn(inCreated, newConversation: nil) == .created)
        #expect(try await store.messages(conversationId: created.id, userId: "u_alice").map(\.text).contains("is ibuprofen safe"))
        #expect(await keys.writes == 2)

        // The same id proposed as new by another user: the stored key is not theirs.
        let theirs = Sample.conversation(id: conversation.id, userId: "u_bob")
        await #expect(throws: StoreError.conversationNotFound) {
            try await store.beginTurn(Sample.turn(conversationId: conversation.id, userId: "u_bob", at: 2), newConversation: theirs)
        }
    }
}
