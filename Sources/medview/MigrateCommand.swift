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

    /// Copies these options into `arguments`.
    func apply(to arguments: inout ServeArguments) {
        arguments.databaseUrl = databaseUrl
        arguments.databasePoolSize = databasePoolSize
        arguments.databaseIamAuth = databaseIamAuth ? true : nil
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
