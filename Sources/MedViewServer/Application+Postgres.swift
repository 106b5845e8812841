import Logging
import MedViewAWS
import MedViewCore
import MedViewPostgres
import MedViewStore
import ServiceLifecycle

/// Opens the PostgreSQL store of `settings` (migrating its schema), with AWS credentials from
/// the standard chain when IAM authentication is on. A failure becomes a ``StartupError`` that
/// says what to fix (unreachable, TLS verification, credentials, a newer schema).
func openPostgresStore(_ settings: PostgresSettings, environment: [String: String], logger: Logger) async throws -> PostgresConversationStore {
    do {
        return try await PostgresConversationStore.open(settings: settings, credentials: databaseCredentials(settings, environment: environment), logger: logger)
    } catch let error as PostgresStoreError {
        throw StartupError(description: "database \(settings.redactedDescription): \(error.description)")
    }
}

/// Applies the schema migrations of the configured store: PostgreSQL when a database URL is set
/// (under an advisory lock), else the SQLite file (migrated as it opens). Returns a line for a
/// person. `medview migrate` runs this.
public func runMigrations(configuration: ServerConfiguration, logger: Logger) async throws -> String {
    guard let settings = configuration.database else {
        let store = try await SQLiteConversationStore.open(path: configuration.databasePath, logger: logger)
        try await store.close()
        return "SQLite schema up to date: \(configuration.databasePath)"
    }
    do {
        let report = try await PostgresConversationStore.migrate(settings: settings, credentials: databaseCredentials(settings, environment: configuration.processEnvironment), logger: logger)
        let applied = report.applied.isEmpty ? "nothing to apply" : "applied " + report.applied.map(String.init).joined(separator: ", ")
        return "PostgreSQL schema at version \(report.currentVersion) (\(applied)): \(settings.redactedDescription)"
    } catch let error as PostgresStoreError {
        throw StartupError(description: "database \(settings.redactedDescription): \(error.description)")
    }
}

/// AWS credentials for IAM database tokens (the standard chain, cached), or `nil` without IAM.
func databaseCredentials(_ settings: PostgresSettings, environment: [String: String]) -> (@Sendable () async throws -> SigV4Credentials)? {
    guard settings.iamAuthentication else { return nil }
    let cached = AWSCachedCredentials(AWSCredentialChain.standard(environment: environment))
    return { try await cached.credentials().credentials }
}

/// Runs `body` with the PostgreSQL store of `settings` (migrated) and its pool running, then
/// stops the pool, whether `body` returns or throws. For tools (`medview keys rotate`,
/// `medview audit`) that use the database without serving.
func withPostgresStore<T: Sendable>(_ settings: PostgresSettings, environment: [String: String], logger: Logger, _ body: @escaping @Sendable (PostgresConversationStore) async throws -> T) async throws -> T {
    let store = try await openPostgresStore(settings, environment: environment, logger: logger)
    let group = ServiceGroup(configuration: .init(services: [.init(service: store.pool)], logger: logger))
    return try await withThrowingTaskGroup(of: T?.self) { tasks in
        tasks.addTask {
            try await group.run()
            return nil
        }
        let result: Result<T, any Error>
        do {
            result = .success(try await body(store))
        } catch {
            result = .failure(error)
        }
        await group.triggerGracefulShutdown()
        while let _ = try await tasks.next() {}
        return try result.get()
    }
}
