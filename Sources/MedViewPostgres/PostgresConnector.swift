import Foundation
import Logging
import MedViewAWS
import NIOCore
import NIOSSL
import PostgresNIO

/// Turns ``PostgresSettings`` into postgres-nio configurations: TLS with verification, the
/// password or a fresh IAM token, the schema as the connection's `search_path`. Also opens the
/// single connections that migrations use, and maps connection failures to typed errors.
struct PostgresConnector: Sendable {
    /// Gives AWS credentials for IAM tokens.
    typealias CredentialSource = @Sendable () async throws -> SigV4Credentials

    let settings: PostgresSettings
    let credentials: CredentialSource?
    let logger: Logger
    private let tls: TLSConfiguration?

    /// - Throws: ``PostgresStoreError/rootCertificateUnreadable(path:)`` if `sslrootcert` is not PEM.
    init(settings: PostgresSettings, credentials: CredentialSource?, logger: Logger) throws(PostgresStoreError) {
        self.settings = settings
        self.credentials = credentials
        self.logger = logger
        self.tls = try Self.tlsConfiguration(settings)
    }

    /// The TLS client configuration of `settings.sslMode`, or `nil` for `disable`.
    static func tlsConfiguration(_ settings: PostgresSettings) throws(PostgresStoreError) -> TLSConfiguration? {
        guard settings.sslMode != .disable else { return nil }
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        switch settings.sslMode {
        case .disable: return nil
        case .require: configuration.certificateVerification = .none
        case .verifyCA: configuration.certificateVerification = .noHostnameVerification
        case .verifyFull: configuration.certificateVerification = .fullVerification
        }
        if let path = settings.rootCertificatePath {
            do {
                let certificates = try NIOSSLCertificate.fromPEMFile(path)
                guard !certificates.isEmpty else { throw PostgresStoreError.rootCertificateUnreadable(path: path) }
                configuration.trustRoots = .certificates(certificates)
            } catch {
                throw .rootCertificateUnreadable(path: path)
            }
        }
        return configuration
    }

    /// The password for one new connection: the URL's, or a fresh IAM token.
    func password() async throws(PostgresStoreError) -> String? {
        guard settings.iamAuthentication else { return settings.password }
        guard let credentials, let region = settings.region else {
            throw .iamTokenUnavailable("IAM authentication is on but no AWS credentials or region are configured")
        }
        let identity: SigV4Credentials
        do {
            identity = try await credentials()
        } catch {
            throw .iamTokenUnavailable("AWS credentials: \(error)")
        }
        do {
            return try RDSAuthToken.make(host: settings.host, port: settings.port, username: settings.username, region: region, credentials: identity, date: Date())
        } catch {
            throw .iamTokenUnavailable("signing: \(error)")
        }
    }

    /// Startup parameters: the schema as `search_path`, and the application name.
    private var startupParameters: [(String, String)] {
        var parameters = [("application_name", "medview")]
        if let schema = settings.schema { parameters.append(("search_path", schema)) }
        return parameters
    }

    /// The pool configuration for a new client generation (a fresh token with IAM).
    func clientConfiguration() async throws -> PostgresClient.Configuration {
        let tlsMode: PostgresClient.Configuration.TLS = tls.map { .require($0) } ?? .disable
        var configuration = PostgresClient.Configuration(
            host: settings.host, port: settings.port, username: settings.username,
            password: try await password(), database: settings.database, tls: tlsMode
        )
        configuration.options.maximumConnections = settings.poolSize
        configuration.options.minimumConnections = 0
        configuration.options.connectTimeout = .seconds(10)
        configuration.options.additionalStartupParameters = startupParameters
        return configuration
    }

    /// Opens one connection outside the pool (migrations, tools), runs `body`, and closes it.
    func withSingleConnection<T: Sendable>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
        let tlsMode: PostgresConnection.Configuration.TLS
        if let tls {
            do {
                tlsMode = .require(try NIOSSLContext(configuration: tls))
            } catch {
                throw PostgresStoreError.tlsVerificationFailed("cannot build the TLS context")
            }
        } else {
            tlsMode = .disable
        }
        var configuration = PostgresConnection.Configuration(
            host: settings.host, port: settings.port, username: settings.username,
            password: try await password(), database: settings.database, tls: tlsMode
        )
        configuration.options.connectTimeout = .seconds(10)
        configuration.options.additionalStartupParameters = startupParameters
        let connection: PostgresConnection
        do {
            connection = try await PostgresConnection.connect(configuration: configuration, id: 0, logger: logger)
        } catch {
            throw Self.connectError(error)
        }
        do {
            let result = try await body(connection)
            try? await connection.close()
            return result
        } catch {
            try? await connection.close()
            throw error
        }
    }

    /// A typed error for a failed connection attempt.
    static func connectError(_ error: any Error) -> PostgresStoreError {
        if let typed = error as? PostgresStoreError { return typed }
        if isTLSFailure(error) { return .tlsVerificationFailed(tlsDetail(error)) }
        guard let psql = error as? PSQLError else { return .unreachable(String(describing: type(of: error))) }
        if psql.code == .sslUnsupported { return .tlsNotOffered }
        if let state = psql.serverInfo?[.sqlState] {
            // 28000 invalid_authorization_specification, 28P01 invalid_password.
            if state.hasPrefix("28") { return .authenticationFailed("SQLSTATE \(state)") }
            return .unreachable("SQLSTATE \(state)")
        }
        if psql.code == .unsupportedAuthMechanism || psql.code == .authMechanismRequiresPassword || psql.code == .saslError {
            return .authenticationFailed("\(psql.code)")
        }
        return .unreachable(psql.underlying.map { String(describing: type(of: $0)) } ?? "\(psql.code)")
    }

    /// Whether `error` (or what it wraps) comes from the TLS handshake.
    static func isTLSFailure(_ error: any Error) -> Bool {
        if error is NIOSSLError || error is BoringSSLError || error is NIOSSLExtraError { return true }
        if let psql = error as? PSQLError {
            if psql.code == .failedToAddSSLHandler { return true }
            if let underlying = psql.underlying { return isTLSFailure(underlying) }
        }
        return false
    }

    private static func tlsDetail(_ error: any Error) -> String {
        if let psql = error as? PSQLError, let underlying = psql.underlying { return tlsDetail(underlying) }
        return String(describing: error)
    }
}
