import Foundation
import MedViewCore
import MedViewStore
import Testing

/// Patients' data is readable by the server's own user only.
@Suite("SQLite file permissions")
struct FilePermissionTests {
    func mode(_ path: String) throws -> Int {
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        return try #require((attributes[.posixPermissions] as? NSNumber)?.intValue) & 0o777
    }

    @Test("the store creates its data directory 0700 and the database and its WAL files 0600")
    func createdPrivate() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let dataDirectory = directory.path("data")
        let path = dataDirectory + "/medview.sqlite"
        let store = try await SQLiteConversationStore.open(path: path, logger: testLogger)
        do {
            let conversation = Sample.conversation(userId: "u_alice")
            try await store.createConversation(conversation)
            #expect(try mode(dataDirectory) == 0o700)
            #expect(try mode(path) == 0o600)
            for suffix in ["-wal", "-shm"] where FileManager.default.fileExists(atPath: path + suffix) {
                #expect(try mode(path + suffix) == 0o600, "\(suffix)")
            }
            try await store.close()
        } catch {
            try? await store.close()
            throw error
        }
    }
}
