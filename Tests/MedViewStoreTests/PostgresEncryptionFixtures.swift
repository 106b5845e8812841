import Foundation
import Logging
import MedViewCore
@testable import MedViewPostgres
import MedViewStore
import PostgresNIO
import ServiceLifecycle
import Testing

/// An encrypted PostgreSQL store in a fresh schema: the PostgreSQL store (its pool running in a
/// `ServiceGroup`, as in the application), its `data_keys` table, a key provider, and the
/// decorator over them. ``close()`` stops the pool; ``dropSchema()`` removes everything.
struct EncryptedPostgres: Sendable {
    let settings: PostgresSettings
    let postgres: PostgresConversationStore
    let keys: PostgresDataKeyStore
    let provider: any KeyProvider
    let encrypted: EncryptedConversationStore
    private let group: ServiceGroup
    private let running: Task<Void, any Error>

    static func open(settings: PostgresSettings, provider: any KeyProvider) async throws -> EncryptedPostgres {
        let postgres = try await PostgresConversationStore.open(settings: settings, logger: testLogger)
        let group = ServiceGroup(services: [postgres.pool], logger: testLogger)
        let running = Task { try await group.run() }
        let keys = PostgresDataKeyStore(store: postgres, logger: testLogger)
        return EncryptedPostgres(
            settings: settings, postgres: postgres, keys: keys, provider: provider,
            encrypted: EncryptedConversationStore(base: postgres, ring: DataKeyRing(provider: provider, keyStore: keys)),
            group: group, running: running
        )
    }

    /// The same database through a new ring (nothing cached), optionally with another provider:
    /// what another task, or this one after a restart, sees.
    func fresh(provider: (any KeyProvider)? = nil) -> EncryptedConversationStore {
        EncryptedConversationStore(base: postgres, ring: DataKeyRing(provider: provider ?? self.provider, keyStore: keys))
    }

    /// Runs one SQL statement as someone with direct access to the database would.
    func sql(_ query: PostgresQuery) async throws {
        try await postgres.pool.withConnection { connection in
            try await connection.query(query, logger: testLogger)
            return ()
        }
    }

    /// The first column of each row of `query`, as text.
    func strings(_ query: PostgresQuery) async throws -> [String] {
        try await postgres.pool.withConnection { connection in
            var values: [String] = []
            for try await value in try await connection.query(query, logger: testLogger).decode(String.self) {
                values.append(value)
            }
            return values
        }
    }

    func close() async throws {
        await group.triggerGracefulShutdown()
        try await running.value
    }

    func dropSchema() async throws {
        try await PostgresConversationStore.dropSchema(settings: settings, logger: testLogger)
    }
}

/// Runs `body` with an encrypted PostgreSQL store in a fresh schema and a local master key file
/// in a temporary directory (or `provider`), and always stops it and drops the schema.
func withEncryptedPostgres(provider: (any KeyProvider)? = nil, _ body: (EncryptedPostgres, TemporaryDirectory) async throws -> Void) async throws {
    let directory = try TemporaryDirectory()
    defer { directory.remove() }
    let settings = try TestDatabase.freshSettings()
    let store: EncryptedPostgres
    do {
        store = try await EncryptedPostgres.open(settings: settings, provider: try provider ?? LocalKeyProvider.load(path: directory.path("master.key")))
    } catch {
        try? await PostgresConversationStore.dropSchema(settings: settings, logger: testLogger)
        throw error
    }
    do {
        try await body(store, directory)
    } catch {
        try? await store.close()
        try? await store.dropSchema()
        throw error
    }
    try await store.close()
    try await store.dropSchema()
}

extension Stores {
    /// The encrypted store over PostgreSQL, keys in the same database, for the conformance suite.
    static let encryptedPostgres: StoreFactory = {
        let directory = try TemporaryDirectory()
        let settings = try TestDatabase.freshSettings()
        do {
            let store = try await EncryptedPostgres.open(settings: settings, provider: try LocalKeyProvider.load(path: directory.path("master.key")))
            return StoreFixture(store: store.encrypted, tearDown: {
                defer { directory.remove() }
                try await store.close()
                try await store.dropSchema()
            })
        } catch {
            directory.remove()
            try? await PostgresConversationStore.dropSchema(settings: settings, logger: testLogger)
            throw error
        }
    }
}

/// `pg_dump` of one schema of the test database: the plain SQL text a backup would hold.
enum PostgresDump {
    /// The newest installed `pg_dump` (`/usr/lib/postgresql/<version>/bin/pg_dump`).
    static func binary() throws -> String {
        let versions = try FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql")
            .filter { FileManager.default.isExecutableFile(atPath: "/usr/lib/postgresql/\($0)/bin/pg_dump") }
            .sorted { $0.compare($1, options: .numeric) == .orderedAscending }
        return "/usr/lib/postgresql/\(try #require(versions.last, "no pg_dump under /usr/lib/postgresql"))/bin/pg_dump"
    }

    /// Dumps `settings.schema` (data and definitions); the password goes in the environment, not
    /// the command line.
    static func dump(_ settings: PostgresSettings) throws -> Data {
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("medview-pgdump-\(UUID().uuidString).sql")
        defer { try? FileManager.default.removeItem(at: output) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try binary())
        process.arguments = ["--no-owner", "--schema", try #require(settings.schema), "--file", output.path]
        var environment = ProcessInfo.processInfo.environment
        environment["PGHOST"] = settings.host
        environment["PGPORT"] = String(settings.port)
        environment["PGUSER"] = settings.username
        environment["PGDATABASE"] = settings.database
        environment["PGPASSWORD"] = settings.password
        environment["PGSSLMODE"] = settings.sslMode.rawValue
        environment["PGSSLROOTCERT"] = settings.rootCertificatePath
        process.environment = environment
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "pg_dump failed")
        return try Data(contentsOf: output)
    }
}

/// The raw files of the throwaway cluster (`MEDVIEW_TEST_DATABASE_DIR`, set by
/// scripts/throwaway-postgres.sh): table and index pages and the write-ahead log, as they lie on
/// disk, for a scan that sees rows pg_dump does not (dead tuples, WAL records, full-page images).
enum PostgresClusterFiles {
    static let directory: String? = ProcessInfo.processInfo.environment["MEDVIEW_TEST_DATABASE_DIR"].flatMap { $0.isEmpty ? nil : $0 }

    /// The names of the files under `base/` and `pg_wal/` that hold any of `needles`; `nil` when
    /// the directory is not known or not readable (another test database).
    static func files(containingAnyOf needles: [String]) -> [String]? {
        guard let directory, FileManager.default.isReadableFile(atPath: directory + "/pg_wal") else { return nil }
        let patterns = needles.map { Data($0.utf8) }
        var found: [String] = []
        for sub in ["base", "pg_wal"] {
            guard let walker = FileManager.default.enumerator(atPath: directory + "/" + sub) else { return nil }
            for case let name as String in walker {
                let path = directory + "/" + sub + "/" + name
                var isDirectory: ObjCBool = false
                guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue,
                      let data = FileManager.default.contents(atPath: path) else { continue }
                if patterns.contains(where: { data.range(of: $0) != nil }) { found.append(sub + "/" + name) }
            }
        }
        return found
    }
}
