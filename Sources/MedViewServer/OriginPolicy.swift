import Foundation

/// Which browser origins may open a WebSocket or send a state-changing request (POST, PUT, PATCH,
/// DELETE): the server's own origin (the one the request's `Host` names) and an allow-list.
///
/// Requests without `Origin` are not checked: browsers always send it on these requests, and the
/// threat is a page in a browser; curl and the tests send none. Nor are `ws://` and `wss://`
/// origins: a browser's `Origin` is the origin of the page (`http`, `https` or `null`), never a
/// WebSocket URL, so only a non-browser client sends one (swift-websocket's `WebSocketClient`,
/// used by the Swift SDK and the benchmark, sends `Origin: ws://HOST`). `Origin: null` (a
/// sandboxed frame, a file) is never allowed.
struct OriginPolicy: Sendable, Equatable {
    /// Normalised origins (`scheme://host[:port]`, lower case, default port left out).
    let allowed: Set<String>

    /// - Parameter allowedOrigins: origins such as `https://app.example.com`; each must pass
    ///   ``normalize(_:)`` (``ServerConfiguration/resolve(arguments:environment:)`` checks them).
    init(allowedOrigins: [String] = []) {
        allowed = Set(allowedOrigins.compactMap(Self.normalize))
    }

    /// Whether the request must pass the check: a WebSocket upgrade or a state-changing method.
    static func applies(method: String, isUpgrade: Bool) -> Bool {
        isUpgrade || ["POST", "PUT", "PATCH", "DELETE"].contains(method.uppercased())
    }

    /// Whether a request with this `Origin` header, sent to this `Host`, may proceed.
    func allows(origin: String?, host: String?) -> Bool {
        guard let origin else { return true }
        let scheme = origin.prefix(while: { $0 != ":" }).lowercased()
        if scheme == "ws" || scheme == "wss" { return true }
        guard let parsed = Self.parse(origin) else { return false }
        if allowed.contains(parsed.normalized) { return true }
        // Same origin: the page was served from the very authority this request is addressed to.
        guard let host, let (hostName, hostPort) = HostName.split(authority: host) else { return false }
        return hostName == parsed.host && (hostPort ?? parsed.defaultPort) == parsed.port
    }

    /// `scheme://host[:port]` in canonical form, or `nil` when `text` is not an http(s) origin
    /// (a path, query, user info or other scheme is not an origin).
    static func normalize(_ text: String) -> String? {
        parse(text)?.normalized
    }

    private struct Parsed {
        var scheme: String
        var host: String
        var port: Int
        var defaultPort: Int { scheme == "https" ? 443 : 80 }
        var normalized: String {
            let shownHost = host.contains(":") ? "[\(host)]" : host
            return "\(scheme)://\(shownHost)" + (port == defaultPort ? "" : ":\(port)")
        }
    }

    private static func parse(_ text: String) -> Parsed? {
        var rest = Substring(text.trimmingCharacters(in: .whitespaces))
        if rest.hasSuffix("/") { rest = rest.dropLast() }
        let scheme: String
        if rest.lowercased().hasPrefix("https://") {
            scheme = "https"
            rest = rest.dropFirst(8)
        } else if rest.lowercased().hasPrefix("http://") {
            scheme = "http"
            rest = rest.dropFirst(7)
        } else {
            return nil
        }
        guard let (host, port) = HostName.split(authority: String(rest)) else { return nil }
        let parsed = Parsed(scheme: scheme, host: host, port: 0)
        return Parsed(scheme: scheme, host: host, port: port ?? parsed.defaultPort)
    }
}
