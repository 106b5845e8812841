import ArgumentParser
import Foundation
import Logging
import MedViewServer

/// The PostgreSQL settings shared by `serve` and `migrate`.
struct DatabaseOptions: ParsableArguments {
    @Option(name: .customLong("database-url"), help: "PostgreSQL instead of the SQLite file: postgres://USER[:PASSWORD]@HOST:5432/DB?sslmode=verify-full&sslrootcert=CA.pem (docs/POSTGRES.md). [env: MEDVIEW_DATABASE_URL]")
    var databaseUrl: String?
    @Option(name: .customLong("database-pool-size"), help: "Most PostgreSQL connections this process opens. [env: MEDVIEW_DATABASE_POOL_SIZE] (default: 10)")
    var databasePoolSize: Int?
    @Flag(name: .customLong("database-iam-auth"), help: "Sign in to Aurora/RDS with an IAM token made from the AWS credentials, instead of a password (same as iam=true in the URL). [env: MEDVIEW_DATABASE_IAM_AUTH]")
    var databaseIamAuth = false
    @Option(name: .customLong("journal-interval-ms"), help: "Group-commit window of the durable replay log: each streamed event is stored within this many ms (plus one commit); 0 stores the log only when the answer ends. [env: MEDVIEW_JOURNAL_INTERVAL_MS] (default: 20)")
    var journalIntervalMs: Int?
    @Option(name: .customLong("heartbeat-interval-ms"), help: "How often this process records that it is alive and recovers answers of dead processes. [env: MEDVIEW_HEARTBEAT_INTERVAL_MS] (default: 2000)")
    var heartbeatIntervalMs: Int?
    @Option(name: .customLong("instance-stale-after-ms"), help: "A process silent this long is taken for dead: its running answers end as 'interrupted' and its share of the per-user limits is released. [env: MEDVIEW_INSTANCE_STALE_AFTER_MS] (default: 10000)")
    var instanceStaleAfterMs: Int?

    /// Copies these options into `arguments`.
    func apply(to arguments: inout ServeArguments) {
        arguments.databaseUrl = databaseUrl
        arguments.databasePoolSize = databasePoolSize
        arguments.databaseIamAuth = databaseIamAuth ? true : nil
        arguments.journalIntervalMs = journalIntervalMs
        arguments.heartbeatIntervalMs = heartbeatIntervalMs
        arguments.instanceStaleAfterMs = instanceStaleAfterMs
    }
}

struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Apply the database schema migrations, then exit.",
        discussion: """
            With --database-url (or MEDVIEW_DATABASE_URL), migrates the PostgreSQL schema under an \
            advisory lock, so it is safe while other processes start; refuses a schema newer than \
            this build. Without it, brings the SQLite file in the data directory up to date. \
            `serve` applies the same migrations when it starts.
            """
    )

    @Option(name: .customLong("data-dir"), help: "Directory of the SQLite file (without --database-url). [env: MEDVIEW_DATA_DIR] (default: ./data)")
    var dataDir: String?
    @OptionGroup var database: DatabaseOptions
    @Option(help: "Log level: trace, debug, info, notice, warning, error. [env: MEDVIEW_LOG_LEVEL] (default: info)")
    var logLevel: String?

    func run() async throws {
        var arguments = ServeArguments()
        arguments.dataDirectory = dataDir
        arguments.logLevel = logLevel
        database.apply(to: &arguments)
        let configuration = try resolveConfiguration(arguments)
        do {
            printLine(try await runMigrations(configuration: configuration, logger: Logger(label: "medview")))
        } catch let error as StartupError {
            throw ValidationError(error.description)
        }
    }
}
