import ArgumentParser
import Foundation
import Logging
import MedViewServer
import MedViewStore

/// `medview keys …`: master key operations on the wrapped data keys of a data directory.
struct KeysCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "Manage the keys that encrypt stored conversations.",
        subcommands: [Rotate.self]
    )

    struct Rotate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Re-wrap every data key under the current master key (messages are not re-encrypted).",
            discussion: """
                Local provider: --new-master-key first adds a new master key to the key file and makes \
                it current. KMS: set --kms-key-id to the new key; data keys wrapped by the old one are \
                decrypted with it and encrypted under the new one. With --database-url the keys are \
                those of the PostgreSQL database (table data_keys), else keys.sqlite in the data \
                directory. The rotation is recorded in the same deployment's audit log. Safe to run \
                while servers run and to run again.
                """
        )

        @Option(name: .customLong("data-dir"), help: "Data directory. [env: MEDVIEW_DATA_DIR] (default: ./data)")
        var dataDir: String?
        @Option(name: .customLong("key-provider"), help: "local or kms. [env: MEDVIEW_KEY_PROVIDER] (default: local, or kms with --kms-key-id)")
        var keyProvider: String?
        @Option(name: .customLong("master-key-file"), help: "Local master key file. [env: MEDVIEW_MASTER_KEY_FILE] (default: DATA_DIR/master.key)")
        var masterKeyFile: String?
        @Option(name: .customLong("kms-key-id"), help: "The current KMS key id, alias or ARN. [env: MEDVIEW_KMS_KEY_ID]")
        var kmsKeyId: String?
        @Flag(name: .customLong("new-master-key"), help: "Local provider: add a new master key and make it current before re-wrapping.")
        var newMasterKey = false
        @OptionGroup var database: DatabaseOptions

        func run() async throws {
            var arguments = ServeArguments()
            arguments.dataDirectory = dataDir
            arguments.keyProvider = keyProvider
            arguments.masterKeyFile = masterKeyFile
            arguments.kmsKeyId = kmsKeyId
            database.apply(to: &arguments)
            let configuration = try resolveConfiguration(arguments)
            if let file = configuration.encryption.masterKeyFile(dataDirectory: configuration.dataDirectory), !FileManager.default.fileExists(atPath: file) {
                throw ValidationError(OperatorToolError.masterKeyFileMissing(path: file).description)
            }
            if newMasterKey {
                guard let file = configuration.encryption.masterKeyFile(dataDirectory: configuration.dataDirectory) else {
                    throw ValidationError("--new-master-key is for the local key provider; for KMS pass the new key as --kms-key-id.")
                }
                _ = try LocalKeyProvider.load(path: file)
                let id = try LocalKeyProvider.addMasterKey(path: file)
                printLine("New current master key \(id) in \(file).")
            }
            do {
                let done = try await rotateDataKeys(configuration: configuration, actor: ProcessInfo.processInfo.userName, logger: Logger(label: "medview.keys"))
                printLine("Re-wrapped \(done.report.rewrapped) data key(s) under \(done.provider) master key \(done.masterKeyId); \(done.report.skipped) changed meanwhile and were skipped.")
            } catch let error as OperatorToolError {
                throw ValidationError(error.description)
            } catch let error as StartupError {
                throw ValidationError(error.description)
            }
        }
    }
}
