/// Why credentials could not be had. Every case names the source; no case ever carries a secret,
/// a session token or a web identity token.
public enum AWSCredentialError: Error, Sendable, Hashable, CustomStringConvertible {
    /// No source in the chain was configured (each source tried is listed).
    case notFound(tried: [String])
    /// The source is configured but its settings or its answer are unusable.
    case invalid(source: String, reason: String)
    /// The source's endpoint answered with an HTTP error (`code` is AWS's error code, if given).
    case httpStatus(source: String, status: Int, code: String?)
    /// The source's endpoint could not be reached or did not answer in time.
    case unreachable(source: String, reason: String)

    /// The source the error comes from (`"chain"` for ``notFound(tried:)``).
    public var source: String {
        switch self {
        case .notFound: "chain"
        case .invalid(let source, _), .httpStatus(let source, _, _), .unreachable(let source, _): source
        }
    }

    public var description: String {
        switch self {
        case .notFound(let tried):
            "No AWS credentials found (tried: \(tried.joined(separator: ", ")))."
        case .invalid(let source, let reason):
            "AWS credentials from \(source) are unusable: \(reason)."
        case .httpStatus(let source, let status, let code):
            "AWS credentials from \(source): HTTP \(status)\(code.map { " \($0)" } ?? "")."
        case .unreachable(let source, let reason):
            "AWS credentials from \(source): endpoint unreachable (\(reason))."
        }
    }
}
