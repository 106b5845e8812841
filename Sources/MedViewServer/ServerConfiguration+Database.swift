import MedViewPostgres

extension ServerConfiguration {
    /// The PostgreSQL settings from `--database-url` / `MEDVIEW_DATABASE_URL`,
    /// `--database-pool-size` / `MEDVIEW_DATABASE_POOL_SIZE` (default 10) and
    /// `--database-iam-auth` / `MEDVIEW_DATABASE_IAM_AUTH` (or `iam=true` in the URL); `nil`
    /// without a URL (the SQLite store). The command line wins over the environment.
    /// - Throws: ``ConfigurationError`` naming the option and its variable, never the password.
    public static func resolveDatabase(url: String?, poolSize: Int?, iamAuthentication: Bool?, environment: [String: String]) throws(ConfigurationError) -> PostgresSettings? {
        let env = { (name: String) -> String? in environment[name].flatMap { $0.isEmpty ? nil : $0 } }
        var size = PostgresSettings.defaultPoolSize
        if let poolSize {
            size = poolSize
        } else if let raw = env("MEDVIEW_DATABASE_POOL_SIZE") {
            guard let parsed = Int(raw) else { throw ConfigurationError("MEDVIEW_DATABASE_POOL_SIZE must be a whole number.") }
            size = parsed
        }
        guard (1...1000).contains(size) else { throw ConfigurationError("--database-pool-size / MEDVIEW_DATABASE_POOL_SIZE must be from 1 to 1000.") }
        var iam = iamAuthentication
        if iam == nil, let raw = env("MEDVIEW_DATABASE_IAM_AUTH") {
            switch raw.lowercased() {
            case "true", "1", "yes": iam = true
            case "false", "0", "no": iam = false
            default: throw ConfigurationError("MEDVIEW_DATABASE_IAM_AUTH must be true or false.")
            }
        }
        guard let url = url ?? env("MEDVIEW_DATABASE_URL") else {
            if iam == true { throw ConfigurationError("--database-iam-auth / MEDVIEW_DATABASE_IAM_AUTH needs --database-url / MEDVIEW_DATABASE_URL.") }
            return nil
        }
        do {
            return try PostgresSettings.parse(url: url, poolSize: size, iamAuthentication: iam, environment: environment)
        } catch {
            throw ConfigurationError("--database-url / MEDVIEW_DATABASE_URL: \(error.description)")
        }
    }
}
