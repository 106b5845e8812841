import MedViewStore

extension ServerConfiguration {
    /// `--key-provider` (`local`, `kms`, `off`; default `local`, or `kms` when `--kms-key-id` is
    /// given), `--master-key-file`, `--kms-key-id`, each with its `MEDVIEW_*` variable.
    /// Production refuses `off`.
    static func resolveEncryption(arguments a: ServeArguments, environment: String, env: (String) -> String?) throws(ConfigurationError) -> EncryptionSettings {
        let kmsKeyId = a.kmsKeyId ?? env("MEDVIEW_KMS_KEY_ID")
        let masterKeyFile = a.masterKeyFile ?? env("MEDVIEW_MASTER_KEY_FILE")
        let name = a.keyProvider ?? env("MEDVIEW_KEY_PROVIDER") ?? (kmsKeyId != nil ? "kms" : "local")
        switch name {
        case "local":
            if kmsKeyId != nil { throw ConfigurationError("--kms-key-id / MEDVIEW_KMS_KEY_ID needs --key-provider kms.") }
            return EncryptionSettings(provider: .local(masterKeyFile: masterKeyFile))
        case "kms":
            guard let kmsKeyId else { throw ConfigurationError("--key-provider kms needs --kms-key-id / MEDVIEW_KMS_KEY_ID.") }
            if masterKeyFile != nil { throw ConfigurationError("--master-key-file / MEDVIEW_MASTER_KEY_FILE is for --key-provider local.") }
            return EncryptionSettings(provider: .kms(keyId: kmsKeyId))
        case "off":
            guard environment != "production" else {
                throw ConfigurationError("--key-provider / MEDVIEW_KEY_PROVIDER 'off' is refused in production: stored messages must be encrypted.")
            }
            return EncryptionSettings(provider: .off)
        default:
            throw ConfigurationError("--key-provider / MEDVIEW_KEY_PROVIDER must be 'local', 'kms' or 'off'.")
        }
    }
}
