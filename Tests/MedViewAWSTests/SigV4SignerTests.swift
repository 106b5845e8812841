import Crypto
import Foundation
import MedViewAWS
import Testing

@Suite struct SigV4SignerTests {
    let credentials = SigV4Credentials(accessKeyID: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    let date = Date(timeIntervalSince1970: 1_440_938_160)  // 2015-08-30T12:36:00Z

    @Test("the signing key matches AWS's documented example (iam, us-east-1, 20120215)")
    func signingKey() {
        let key = SigV4Signer(service: "iam", region: "us-east-1").signingKey(secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", day: "20120215")
        #expect(key.withUnsafeBytes { Array($0) }.hexString == "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d")
    }

    @Test("a Bedrock model id's ':' is encoded once in the URL and twice in the canonical URI")
    func bedrockDoubleEncoding() throws {
        let url = try #require(URL(string: "https://bedrock-runtime.us-east-1.amazonaws.com/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/converse-stream"))
        let body = Array(#"{"messages":[]}"#.utf8)
        let request = try SigV4Request(method: "POST", url: url, headers: [.init("Content-Type", "application/json")], payload: .bytes(body))
        #expect(request.path == "/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/converse-stream")
        #expect(request.headerValues("host") == ["bedrock-runtime.us-east-1.amazonaws.com"])
        let signed = try SigV4Signer(service: "bedrock", region: "us-east-1").sign(request, credentials: credentials, date: date)
        let lines = signed.canonicalRequest.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines[1] == "/model/anthropic.claude-3-5-haiku-20241022-v1%253A0/converse-stream")
        #expect(lines.last.map(String.init) == SHA256.hash(data: body).map { String(format: "%02x", $0) }.joined())
        #expect(signed.request.target == "/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/converse-stream")
        #expect(signed.signedHeaders == "content-type;host;x-amz-date")
        #expect(signed.authorization?.hasPrefix("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/bedrock/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=") == true)
    }

    @Test("S3 options keep the path as written: no normalization, no second encoding, content hash header signed")
    func s3Options() throws {
        let request = SigV4Request(method: "PUT", path: "/bucket//a/../photo%20one.jpg", headers: [.init("Host", "s3.amazonaws.com")], payload: .unsigned)
        let signed = try SigV4Signer(service: "s3", region: "us-east-1", options: .s3).sign(request, credentials: credentials, date: date)
        let lines = signed.canonicalRequest.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines[1] == "/bucket//a/../photo%20one.jpg")
        #expect(lines.last == "UNSIGNED-PAYLOAD")
        #expect(signed.request.headerValues("x-amz-content-sha256") == ["UNSIGNED-PAYLOAD"])
        #expect(signed.signedHeaders == "host;x-amz-content-sha256;x-amz-date")
    }

    @Test("a precomputed payload hash is used as given")
    func precomputedHash() throws {
        let hash = String(repeating: "ab", count: 32)
        let request = SigV4Request(method: "POST", path: "/", headers: [.init("Host", "h")], payload: .sha256(hash))
        let signed = try SigV4Signer(service: "s", region: "r").sign(request, credentials: credentials, date: date)
        #expect(signed.canonicalRequest.hasSuffix("\n" + hash))
    }

    @Test("signing twice replaces the earlier date, token and Authorization instead of adding more")
    func resign() throws {
        let signer = SigV4Signer(service: "bedrock", region: "us-east-1")
        var withToken = credentials
        withToken.sessionToken = "token-1"
        let request = SigV4Request(method: "GET", path: "/", headers: [.init("Host", "h")])
        let first = try signer.sign(request, credentials: withToken, date: date)
        withToken.sessionToken = "token-2"
        let second = try signer.sign(first.request, credentials: withToken, date: date.addingTimeInterval(60))
        #expect(second.request.headerValues("authorization").count == 1)
        #expect(second.request.headerValues("x-amz-date") == ["20150830T123700Z"])
        #expect(second.request.headerValues("x-amz-security-token") == ["token-2"])
        let presigned = try signer.presign(first.request, credentials: withToken, date: date, expires: 60)
        #expect(presigned.request.headerValues("authorization").isEmpty)
        let again = try signer.presign(presigned.request, credentials: withToken, date: date, expires: 60)
        #expect(again.request.query.filter { $0.name == "X-Amz-Signature" }.count == 1)
        #expect(again.signature == presigned.signature)
    }

    @Test("typed errors: no Host, a lifetime outside 1 s…7 days, an unusable scope, a URL without host")
    func errors() throws {
        let signer = SigV4Signer(service: "bedrock", region: "us-east-1")
        let noHost = SigV4Request(method: "GET", path: "/", headers: [])
        #expect(throws: SigV4Error.missingHost) { try signer.sign(noHost, credentials: credentials, date: date) }
        let request = SigV4Request(method: "GET", path: "/", headers: [.init("Host", "h")])
        #expect(throws: SigV4Error.invalidExpiration(seconds: 0)) { try signer.presign(request, credentials: credentials, date: date, expires: 0) }
        #expect(throws: SigV4Error.invalidExpiration(seconds: 604_801)) { try signer.presign(request, credentials: credentials, date: date, expires: 604_801) }
        #expect(throws: Never.self) { try signer.presign(request, credentials: credentials, date: date, expires: 604_800) }
        #expect(throws: SigV4Error.invalidScope("us/east")) { try SigV4Signer(service: "s", region: "us/east").sign(request, credentials: credentials, date: date) }
        #expect(throws: SigV4Error.invalidScope("")) { try SigV4Signer(service: "", region: "r").sign(request, credentials: credentials, date: date) }
        #expect(throws: SigV4Error.self) { try SigV4Request(method: "GET", url: URL(fileURLWithPath: "/tmp/x")) }
        #expect(throws: SigV4Error.self) { try SigV4Request(method: "GET", url: #require(URL(string: "https://h/?bad=%FF"))) }
    }

    @Test("URLs: non-default ports stay in Host, the query is decoded in order, '+' stays a plus")
    func urls() throws {
        let request = try SigV4Request(method: "GET", url: #require(URL(string: "http://localhost:8080/a%20b?x=1&y=a+b%2Bc&flag&x=0")))
        #expect(request.headerValues("host") == ["localhost:8080"])
        #expect(request.path == "/a%20b")
        #expect(request.query == [.init("x", "1"), .init("y", "a+b+c"), .init("flag", ""), .init("x", "0")])
        #expect(request.encodedQuery == "x=1&y=a%2Bb%2Bc&flag=&x=0")
        let defaultPort = try SigV4Request(method: "GET", url: #require(URL(string: "https://example.com:443/")))
        #expect(defaultPort.headerValues("host") == ["example.com"])
        let explicitHost = try SigV4Request(method: "GET", url: #require(URL(string: "https://example.com/")), headers: [.init("host", "other")])
        #expect(explicitHost.headerValues("HOST") == ["other"])
    }

    @Test("X-Amz-Date is the UTC time, for dates across four centuries")
    func amzDates() throws {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        var rng = SeededRandom(seed: 42)
        let signer = SigV4Signer(service: "s", region: "r")
        let request = SigV4Request(method: "GET", path: "/", headers: [.init("Host", "h")])
        var samples: [TimeInterval] = [0, 951_782_400, 951_868_799.999, 4_107_542_400, -1, 253_402_300_799]
        samples += (0..<300).map { _ in TimeInterval(Int64.random(in: -2_208_988_800 ... 7_258_118_400, using: &rng)) + 0.75 }
        for seconds in samples {
            let date = Date(timeIntervalSince1970: seconds)
            let signed = try signer.sign(request, credentials: credentials, date: date)
            #expect(signed.request.headerValues("x-amz-date") == [formatter.string(from: Date(timeIntervalSince1970: seconds.rounded(.down)))])
        }
    }

    @Test("credentials never print their secret or token")
    func redaction() {
        let secret = SigV4Credentials(accessKeyID: "AKID", secretAccessKey: "very-secret", sessionToken: "session-secret")
        #expect(!secret.description.contains("very-secret"))
        #expect(!secret.description.contains("session-secret"))
        #expect(secret.description.contains("AKID"))
        #expect(!"\(secret)".contains("secret-"))
    }
}
