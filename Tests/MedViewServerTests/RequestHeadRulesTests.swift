import Foundation
@testable import MedViewServer
import Testing

/// The pure rules under the HTTP layer's guard: head measuring, host names, origins.
@Suite struct RequestHeadRulesTests {
    static let limits = HTTPConnectionLimits(maxRequestLineBytes: 20, maxHeaderCount: 3, maxHeaderBytes: 100)

    /// Scans `text` split into pieces of `size` bytes.
    static func scan(_ text: String, pieces size: Int) -> RequestHeadScanner.Outcome {
        var scanner = RequestHeadScanner(limits: limits)
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let piece = bytes[offset..<min(bytes.count, offset + size)]
            let outcome = scanner.scan(piece)
            if outcome != .incomplete {
                if case .complete(let consumed) = outcome { return .complete(consumed: offset + consumed) }
                return outcome
            }
            offset += size
        }
        return .incomplete
    }

    @Test("the same verdict however the bytes are split")
    func splitInvariance() {
        let cases: [(String, RequestHeadScanner.Outcome)] = [
            ("GET / HTTP/1.1\r\nHost: a\r\n\r\nBODY", .complete(consumed: 27)),
            ("\r\nGET / HTTP/1.1\nHost: a\n\n", .complete(consumed: 26)),
            ("GET /aaaaaaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\n", .violation(.requestLineTooLong)),
            ("GET /aaaaaaaaaaaaaaaaaaaaaaaa", .violation(.requestLineTooLong)),
            ("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n", .violation(.tooManyHeaderFields)),
            ("GET / HTTP/1.1\r\nA: " + String(repeating: "x", count: 120), .violation(.headTooLarge)),
            ("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", .complete(consumed: 36)),
            ("GET / HTTP/1.1\r\nHost: a\r\n", .incomplete),
        ]
        for (text, expected) in cases {
            for size in [1, 2, 3, 7, 1000] {
                #expect(Self.scan(text, pieces: size) == expected, "\(text.debugDescription) in pieces of \(size)")
            }
        }
    }

    @Test("loopback names: localhost, 127.0.0.0/8 and ::1, with or without port; nothing a DNS name can fake")
    func loopbackNames() {
        for authority in ["localhost", "LocalHost:8080", "localhost.", "127.0.0.1", "127.0.0.1:80", "127.255.0.9:1", "[::1]", "[::1]:8080", "[0:0:0:0:0:0:0:1]:9"] {
            #expect(HostName.isLoopback(authority: authority), "\(authority)")
        }
        for authority in ["", "0.0.0.0", "10.0.0.1", "128.0.0.1", "[::]", "[::2]", "localhost.example", "127.0.0.1.nip.io", "127.1", "0x7f.0.0.1", "localhost:http", "localhost:99999", "[::1", "a b", "evil;x"] {
            #expect(!HostName.isLoopback(authority: authority), "\(authority)")
        }
        #expect(HostName.isLoopback("::1"))
        #expect(!HostName.isLoopback("::"))
    }

    @Test("same origin is the request's own Host (default ports included); others only when listed")
    func origins() {
        let policy = OriginPolicy(allowedOrigins: ["https://app.example.com"])
        #expect(policy.allows(origin: nil, host: nil))
        #expect(policy.allows(origin: "http://localhost:8080", host: "localhost:8080"))
        #expect(policy.allows(origin: "http://example.com", host: "example.com:80"))
        #expect(policy.allows(origin: "https://example.com", host: "example.com"))
        #expect(policy.allows(origin: "https://app.example.com", host: "api.example.com"))
        #expect(policy.allows(origin: "http://[::1]:8080", host: "[::1]:8080"))
        #expect(!policy.allows(origin: "http://localhost:8081", host: "localhost:8080"))
        #expect(!policy.allows(origin: "https://example.com", host: "example.com:80"))
        #expect(!policy.allows(origin: "null", host: "localhost"))
        // Only non-browser clients send WebSocket-scheme origins (swift-websocket's client does).
        #expect(policy.allows(origin: "ws://127.0.0.1", host: "127.0.0.1:8080"))
        #expect(policy.allows(origin: "wss://elsewhere.example", host: "127.0.0.1:8080"))
        #expect(!policy.allows(origin: "file://", host: "localhost"))
        #expect(!policy.allows(origin: "http://evil.example", host: nil))
        #expect(!policy.allows(origin: "http://app.example.com", host: "api.example.com"))
        #expect(OriginPolicy.normalize("HTTPS://App.Example.com:443/") == "https://app.example.com")
        #expect(OriginPolicy.normalize("https://app.example.com/x") == nil)
        #expect(OriginPolicy.normalize("ftp://app.example.com") == nil)
        #expect(OriginPolicy.applies(method: "POST", isUpgrade: false))
        #expect(OriginPolicy.applies(method: "GET", isUpgrade: true))
        #expect(!OriginPolicy.applies(method: "GET", isUpgrade: false))
    }
    @Test("a bearer token is read as before, spaces and tabs around it trimmed")
    func bearerTokens() {
        // How the token was read when Foundation trimmed it: the same headers must give the same token.
        func reference(_ header: String?) -> String? {
            guard let header else { return nil }
            let parts = header.split(separator: " ", maxSplits: 1)
            guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
            let token = parts[1].trimmingCharacters(in: .whitespaces)
            return token.isEmpty ? nil : token
        }
        let headers: [String?] = [
            nil, "", "Bearer", "Bearer ", "Bearer  ", "Bearer abc.def.ghi", "bearer abc", "BEARER  abc\t", "Bearer \tabc \t ",
            "Bearer a b", "Basic abc", "Bearer\tabc", "Bearer \u{00A0}abc\u{3000}", "Bearer \u{2028}abc", "Bearer abc\n", " Bearer abc",
        ]
        for header in headers {
            #expect(AuthMiddleware.bearerToken(header) == reference(header), "\(String(describing: header))")
        }
    }
}
