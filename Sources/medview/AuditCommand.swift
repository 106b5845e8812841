import ArgumentParser
import Foundation
import Logging
import MedViewCore
import MedViewServer

/// `medview audit`: check and read the audit trail.
struct AuditCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "The audit trail (who did what to which record, when): verify its hash chain, export it.",
        subcommands: [Verify.self, Export.self]
    )

    struct Options: ParsableArguments {
        @Option(name: .customLong("data-dir"), help: "Data directory holding audit.sqlite (without --database-url). [env: MEDVIEW_DATA_DIR] (default: ./data)")
        var dataDir: String?
        @OptionGroup var database: DatabaseOptions

        /// The stored entries (from the PostgreSQL table audit_log with --database-url, else audit.sqlite).
        func entries(since: Date?) async throws -> [AuditEntry] {
            var arguments = ServeArguments()
            arguments.dataDirectory = dataDir
            arguments.logLevel = "error"
            database.apply(to: &arguments)
            let configuration = try resolveConfiguration(arguments)
            var logger = Logger(label: "medview.audit")
            logger.logLevel = .error
            do {
                return try await readAuditLog(configuration: configuration, since: since, logger: logger)
            } catch let error as OperatorToolError {
                throw ValidationError(error.description)
            } catch let error as StartupError {
                throw ValidationError(error.description)
            }
        }
    }

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check every entry's hash and the chain; name the first altered, inserted or missing entry (exit status 1).",
            discussion: "The last entries can be removed without a trace in the chain: compare the count with the one you exported last, or keep exports elsewhere."
        )

        @OptionGroup var options: Options

        func run() async throws {
            let entries = try await options.entries(since: nil)
            let verdict = AuditChain.verify(entries)
            print(verdict.description)
            if case .intact = verdict { return }
            throw ExitCode(1)
        }
    }

    struct Export: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the entries as JSON lines, oldest first.")

        @OptionGroup var options: Options
        @Option(help: "Only entries at or after this time (ISO 8601, e.g. 2026-12-01T00:00:00Z).")
        var since: String?

        func run() async throws {
            var start: Date?
            if let since {
                guard let date = ISO8601DateFormatter().date(from: since) else { throw ValidationError("--since must be an ISO 8601 time, e.g. 2026-12-01T00:00:00Z.") }
                start = date
            }
            let entries = try await options.entries(since: start)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            encoder.dateEncodingStrategy = .iso8601
            for entry in entries {
                FileHandle.standardOutput.write(try encoder.encode(entry) + Data("\n".utf8))
            }
        }
    }
}
