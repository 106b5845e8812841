import Foundation

/// Where the PostgreSQL store is and how to reach it, parsed once from a
/// `postgres://user[:password]@host[:port]/database?param=value…` URL and the settings beside it.
///
/// Invariants: `host` and `username` are non-empty; `port` is 1…65535; `poolSize` ≥ 1; IAM
/// authentication never travels without TLS and never with a password in the URL; `schema`, when
/// set, is a plain lower-case identifier (so it is safe to quote into SQL).
public struct PostgresSettings: Sendable, Equatable {
    /// How TLS is used, with libpq's names.
    public enum SSLMode: String, Sendable, Equatable, CaseIterable {
        /// Plain TCP (the default for loopback hosts only).
        case disable
        /// TLS, but the server certificate is not checked (protects against passive listeners only).
        case require
        /// TLS with the certificate chain checked against the root certificates, not the host name.
        case verifyCA = "verify-ca"
        /// TLS with the chain and the host name checked (the default for every non-loopback host).
        case verifyFull = "verify-full"
    }

    public var host: String
    public var port: Int
    public var username: String
    /// The password from the URL; `nil` with IAM authentication (a token is made per connection).
    public var password: String?
    public var database: String
    public var sslMode: SSLMode
    /// PEM file of the root certificates trusted for the server (`sslrootcert=`); `nil` uses the
    /// system's trust store.
    public var rootCertificatePath: String?
    /// Most connections the pool opens.
    public var poolSize: Int
    /// Authenticate with an Aurora/RDS IAM token instead of a password.
    public var iamAuthentication: Bool
    /// The AWS region the IAM token is signed for (`region=`, else `AWS_REGION` / `AWS_DEFAULT_REGION`).
    public var region: String?
    /// The schema the tables live in (`schema=`); created by the migration if missing. `nil` uses
    /// the database's default search path (normally `public`).
    public var schema: String?

    /// The default pool size.
    public static let defaultPoolSize = 10

    public init(host: String, port: Int = 5432, username: String, password: String? = nil, database: String, sslMode: SSLMode, rootCertificatePath: String? = nil, poolSize: Int = PostgresSettings.defaultPoolSize, iamAuthentication: Bool = false, region: String? = nil, schema: String? = nil) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.database = database
        self.sslMode = sslMode
        self.rootCertificatePath = rootCertificatePath
        self.poolSize = poolSize
        self.iamAuthentication = iamAuthentication
        self.region = region
        self.schema = schema
    }

    /// Whether `host` names this machine (127.0.0.0/8, `::1`, `localhost`).
    public var isLoopback: Bool {
        Self.isLoopback(host)
    }

    /// The URL without its password, for start-up lines and logs.
    public var redactedDescription: String {
        var text = "postgres://\(username)@\(host.contains(":") ? "[\(host)]" : host):\(port)/\(database)?sslmode=\(sslMode.rawValue)"
        if iamAuthentication { text += "&iam=true" }
        if let schema { text += "&schema=\(schema)" }
        return text
    }

    /// Parses a database URL.
    ///
    /// Query parameters: `sslmode` (`disable`, `require`, `verify-ca`, `verify-full`; default
    /// `verify-full`, or `disable` for a loopback host), `sslrootcert` (PEM file), `iam`
    /// (`true`/`false`), `region`, `schema`. Unknown parameters are refused, so a typo is not
    /// silently ignored. `poolSize` and `iamAuthentication` given here (from their own settings)
    /// override the URL's.
    /// - Parameter environment: read for `AWS_REGION` / `AWS_DEFAULT_REGION` only.
    public static func parse(url text: String, poolSize: Int? = nil, iamAuthentication: Bool? = nil, environment: [String: String] = [:]) throws(PostgresSettingsError) -> PostgresSettings {
        guard let components = URLComponents(string: text),
              let scheme = components.scheme?.lowercased(), scheme == "postgres" || scheme == "postgresql"
        else { throw .invalid("the database URL must look like postgres://user@host:5432/database") }
        guard let rawHost = components.host, !rawHost.isEmpty else { throw .invalid("the database URL has no host") }
        let host = rawHost.hasPrefix("[") && rawHost.hasSuffix("]") ? String(rawHost.dropFirst().dropLast()) : rawHost
        guard let username = components.user?.removingPercentEncoding, !username.isEmpty else {
            throw .invalid("the database URL has no user name (postgres://USER@host/database)")
        }
        let password = components.password?.removingPercentEncoding
        let port = components.port ?? 5432
        guard (1...65535).contains(port) else { throw .invalid("the database port must be 1…65535") }
        var database = components.path
        if database.hasPrefix("/") { database.removeFirst() }
        database = database.removingPercentEncoding ?? database
        if database.isEmpty { database = username }

        var parameters: [String: String] = [:]
        for item in components.queryItems ?? [] {
            guard ["sslmode", "sslrootcert", "iam", "region", "schema"].contains(item.name) else {
                throw .invalid("unknown database URL parameter '\(item.name)' (known: sslmode, sslrootcert, iam, region, schema)")
            }
            parameters[item.name] = item.value ?? ""
        }
        let sslMode: SSLMode
        if let raw = parameters["sslmode"] {
            guard let mode = SSLMode(rawValue: raw) else {
                throw .invalid("sslmode must be one of disable, require, verify-ca, verify-full")
            }
            sslMode = mode
        } else {
            sslMode = isLoopback(host) ? .disable : .verifyFull
        }
        var iam = false
        if let raw = parameters["iam"] {
            guard let value = ["true": true, "1": true, "false": false, "0": false][raw.lowercased()] else {
                throw .invalid("iam must be true or false")
            }
            iam = value
        }
        if let iamAuthentication { iam = iam || iamAuthentication }
        let region = parameters["region"].flatMap { $0.isEmpty ? nil : $0 }
            ?? environment["AWS_REGION"].flatMap { $0.isEmpty ? nil : $0 }
            ?? environment["AWS_DEFAULT_REGION"].flatMap { $0.isEmpty ? nil : $0 }
        if iam {
            guard password == nil else { throw .invalid("IAM authentication makes its own token: remove the password from the database URL") }
            guard sslMode != .disable else { throw .invalid("IAM authentication needs TLS: use sslmode=verify-full (the default for a remote host)") }
            guard region != nil else { throw .invalid("IAM authentication needs a region: add region=… to the database URL or set AWS_REGION") }
        }
        let schema = parameters["schema"].flatMap { $0.isEmpty ? nil : $0 }
        if let schema {
            guard schema.count <= 63, schema.first.map({ $0 == "_" || ("a"..."z").contains($0) }) == true,
                  schema.allSatisfy({ $0 == "_" || ("a"..."z").contains($0) || ("0"..."9").contains($0) })
            else { throw .invalid("schema must be a lower-case identifier: letters, digits and _, at most 63 characters") }
        }
        let size = poolSize ?? defaultPoolSize
        guard size >= 1 else { throw .invalid("the database pool size must be at least 1") }
        let rootCertificate = parameters["sslrootcert"].flatMap { $0.isEmpty ? nil : $0 }
        return PostgresSettings(
            host: host, port: port, username: username, password: password, database: database, sslMode: sslMode,
            rootCertificatePath: rootCertificate, poolSize: size, iamAuthentication: iam, region: region, schema: schema
        )
    }

    private static func isLoopback(_ host: String) -> Bool {
        let lower = host.lowercased()
        return lower == "localhost" || lower == "::1" || lower.hasPrefix("127.")
    }
}

/// A database URL or setting that cannot be used. The message never contains the password.
public enum PostgresSettingsError: Error, Sendable, Equatable, CustomStringConvertible {
    case invalid(String)

    public var description: String {
        switch self {
        case .invalid(let reason): "Database URL: \(reason)."
        }
    }
}
