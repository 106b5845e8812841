import MedViewCore

/// Why the PostgreSQL store could not open, migrate or store something. Details name SQLSTATE
/// codes and library errors, never user text or the password.
public enum PostgresStoreError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The server could not be reached or refused the connection.
    case unreachable(String)
    /// TLS was asked for and the server's certificate failed verification (wrong root
    /// certificate, wrong host name, expired), or the handshake failed.
    case tlsVerificationFailed(String)
    /// TLS was asked for and the server does not offer it.
    case tlsNotOffered
    /// The root certificate file (`sslrootcert`) cannot be read as PEM.
    case rootCertificateUnreadable(path: String)
    /// The server refused the user name, password or IAM token.
    case authenticationFailed(String)
    /// The database's schema is newer than this build knows: refusing to run against it.
    case schemaTooNew(database: Int, known: Int)
    /// A migration failed; nothing of it was applied.
    case migrationFailed(version: Int, detail: String)
    /// Creating one of the functions every start (re)creates failed
    /// (``PostgresMigration/repeatable``, counted from 1).
    case functionSetupFailed(index: Int, detail: String)
    /// An IAM authentication token could not be made (no AWS credentials, signing failed).
    case iamTokenUnavailable(String)
    /// The text of `field` contains U+0000, which a PostgreSQL `text` column cannot hold; nothing
    /// was written. (The edge refuses NUL in client input; this guards everything else.)
    case textContainsNUL(field: String)

    public var description: String {
        switch self {
        case .unreachable(let detail): "PostgreSQL is unreachable: \(detail)"
        case .tlsVerificationFailed(let detail): "PostgreSQL TLS verification failed: \(detail)"
        case .tlsNotOffered: "PostgreSQL does not offer TLS, and the sslmode requires it"
        case .rootCertificateUnreadable(let path): "the root certificate file '\(path)' (sslrootcert) cannot be read as PEM"
        case .authenticationFailed(let detail): "PostgreSQL refused the credentials: \(detail)"
        case .schemaTooNew(let database, let known): "the database schema is at version \(database), newer than the \(known) this build knows: upgrade medview before running it against this database"
        case .migrationFailed(let version, let detail): "schema migration \(version) failed: \(detail)"
        case .functionSetupFailed(let index, let detail): "creating the store's function \(index) failed: \(detail)"
        case .iamTokenUnavailable(let detail): "no IAM database token: \(detail)"
        case .textContainsNUL(let field): "\(field) contains U+0000 (NUL), which PostgreSQL text cannot store"
        }
    }
}
