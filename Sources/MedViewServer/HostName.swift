#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Host names as they appear in a bind address, a `Host` header or an origin.
enum HostName {
    /// `host[:port]` split into its host (brackets removed from an IPv6 literal) and port.
    /// `nil` for text that is not a plausible authority: anything outside letters, digits and
    /// `.-_:[]`, an empty host, or a port that is not a number up to 65535.
    static func split(authority: String) -> (host: String, port: Int?)? {
        guard !authority.isEmpty, authority.utf8.count <= 300,
              authority.unicodeScalars.allSatisfy({ $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || ".-_:[]".unicodeScalars.contains($0)) })
        else { return nil }
        var host = Substring(authority)
        var portText: Substring?
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else { return nil }
            let rest = host[host.index(after: close)...]
            host = host[host.index(after: host.startIndex)..<close]
            if !rest.isEmpty {
                guard rest.hasPrefix(":") else { return nil }
                portText = rest.dropFirst()
            }
        } else if let colon = host.firstIndex(of: ":") {
            // A bare IPv6 address (a bind address such as `::1`) has several colons and no port.
            if host[host.index(after: colon)...].contains(":") {
                return host.contains("[") || host.contains("]") ? nil : (String(host).lowercased(), nil)
            }
            portText = host[host.index(after: colon)...]
            host = host[..<colon]
        }
        guard !host.isEmpty, !host.contains("["), !host.contains("]") else { return nil }
        var port: Int?
        if let portText {
            guard let value = Int(portText), (0...65535).contains(value), portText.allSatisfy(\.isNumber) else { return nil }
            port = value
        }
        return (host.lowercased(), port)
    }

    /// Whether `host` (a name or address, without port or brackets) always means this machine:
    /// `localhost`, an address in 127.0.0.0/8, or `::1`. A DNS name that happens to resolve to
    /// loopback is not: that is exactly what a DNS-rebinding page controls.
    static func isLoopback(_ host: String) -> Bool {
        var name = host.lowercased()
        if name.hasSuffix(".") { name.removeLast() }
        if name == "localhost" { return true }
        var v4 = in_addr()
        if isDottedQuad(name), inet_pton(AF_INET, name, &v4) == 1 {
            return UInt32(bigEndian: v4.s_addr) >> 24 == 127
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, name, &v6) == 1 {
            return withUnsafeBytes(of: &v6) { bytes in bytes.prefix(15).allSatisfy { $0 == 0 } && bytes[15] == 1 }
        }
        return false
    }

    /// Whether an authority (`Host` header value: host with optional port) names this machine's loopback.
    static func isLoopback(authority: String) -> Bool {
        guard let (host, _) = split(authority: authority) else { return false }
        return isLoopback(host)
    }

    /// Four decimal numbers separated by dots (inet_pton alone would be the judge of the values).
    private static func isDottedQuad(_ text: String) -> Bool {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts.allSatisfy { !$0.isEmpty && $0.count <= 3 && $0.allSatisfy(\.isNumber) }
    }
}
