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
                decrypted with it and encrypted under the new one. Safe to run while servers run and \
                to run again.
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

        func run() async throws {
            var arguments = ServeArguments()
            arguments.dataDirectory = dataDir
            arguments.keyProvider = keyProvider
            arguments.masterKeyFile = masterKeyFile
            arguments.kmsKeyId = kmsKeyId
            let environment = ProcessInfo.processInfo.environment
            let configuration: ServerConfiguration
            do {
                configuration = try ServerConfiguration.resolve(arguments: arguments, environment: environment)
            } catch {
                throw ValidationError(error.description)
            }
            let settings = configuration.encryption
            if newMasterKey {
                guard let file = settings.masterKeyFile(dataDirectory: configuration.dataDirectory) else {
                    throw ValidationError("--new-master-key is for the local key provider; for KMS pass the new key as --kms-key-id.")
                }
                _ = try LocalKeyProvider.load(path: file)
                let id = try LocalKeyProvider.addMasterKey(path: file)
                printLine("New current master key \(id) in \(file).")
            }
            guard let provider = try settings.makeKeyProvider(dataDirectory: configuration.dataDirectory, environment: environment) else {
                throw ValidationError("Encryption is off: there are no keys to rotate.")
            }
            let keys = try await SQLiteDataKeyStore.open(
                path: EncryptionSettings.keyDatabasePath(dataDirectory: configuration.dataDirectory), logger: Logger(label: "medview.keys")
            )
            do {
                let report = try await KeyRotation.rotate(keyStore: keys, provider: provider)
                try await keys.close()
                printLine("Re-wrapped \(report.rewrapped) data key(s) under \(provider.name) master key \(provider.currentMasterKeyId); \(report.skipped) changed meanwhile and were skipped.")
            } catch {
                try? await keys.close()
                throw ValidationError("rotation stopped: \(error) (keys re-wrapped so far stay re-wrapped; run again once the cause is fixed)")
            }
        }
    }
}
