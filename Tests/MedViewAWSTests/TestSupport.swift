import Foundation
import MedViewAWS

/// Where the public test vectors live: `$MEDVIEW_VECTORS` if set, else `<repo>/../shared/vectors`
/// (the repository root is three levels up from this file).
enum Vectors {
    static let root: URL? = {
        let fileManager = FileManager.default
        if let override = ProcessInfo.processInfo.environment["MEDVIEW_VECTORS"], !override.isEmpty {
            let url = URL(fileURLWithPath: override, isDirectory: true)
            return fileManager.fileExists(atPath: url.path) ? url : nil
        }
        let url = repositoryRoot.deletingLastPathComponent().appendingPathComponent("shared/vectors", isDirectory: true)
        return fileManager.fileExists(atPath: url.path) ? url : nil
    }()

    /// `true` when the vectors folder exists; tests that need it are skipped (visibly) otherwise.
    static var available: Bool { root != nil }

    static let repositoryRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()
        .deletingLastPathComponent()
        .deletingLastPathComponent()

    static func url(_ relative: String) -> URL? {
        root?.appendingPathComponent(relative)
    }

    /// Sub-folders of `relative`, sorted; empty if the vectors are absent.
    static func folders(_ relative: String) -> [String] {
        guard let base = url(relative),
              let names = try? FileManager.default.contentsOfDirectory(atPath: base.path)
        else { return [] }
        return names.filter { name in
            var isDirectory: ObjCBool = false
            return FileManager.default.fileExists(atPath: base.appendingPathComponent(name).path, isDirectory: &isDirectory) && isDirectory.boolValue
        }.sorted()
    }

    /// Files directly in `relative`, sorted; empty if the vectors are absent.
    static func files(_ relative: String) -> [String] {
        guard let base = url(relative),
              let names = try? FileManager.default.contentsOfDirectory(atPath: base.path)
        else { return [] }
        return names.sorted()
    }

    static func bytes(_ relative: String) throws -> [UInt8] {
        guard let url = url(relative) else { throw VectorError.missing(relative) }
        return Array(try Data(contentsOf: url))
    }

    /// A text file with CR removed (the suites are LF, but a checkout may add CR).
    static func text(_ relative: String) throws -> String {
        String(decoding: try bytes(relative), as: UTF8.self).replacingOccurrences(of: "\r", with: "")
    }

    enum VectorError: Error { case missing(String) }
}

/// A raw HTTP/1.1 request from a SigV4 suite file: the request line's target is unencoded and
/// may contain spaces (`GET /example space/ HTTP/1.1`); a header line starting with whitespace
/// continues the previous header (folded value).
struct RawHTTPRequest {
    var method: String
    var target: String
    var headers: [SigV4Request.Header]
    var body: [UInt8]

    init(_ text: String) {
        var lines = text.components(separatedBy: "\n")
        let requestLine = lines.removeFirst()
        let firstSpace = requestLine.firstIndex(of: " ") ?? requestLine.endIndex
        method = String(requestLine[..<firstSpace])
        var rest = requestLine[firstSpace...].dropFirst()
        if let version = rest.range(of: " HTTP/", options: .backwards) {
            rest = rest[..<version.lowerBound]
        }
        target = String(rest)
        headers = []
        var bodyLines: [String] = []
        var inBody = false
        for line in lines {
            if inBody {
                bodyLines.append(line)
            } else if line.isEmpty {
                inBody = true
            } else if line.first == " " || line.first == "\t", !headers.isEmpty {
                headers[headers.count - 1].value += "\n" + line
            } else if let colon = line.firstIndex(of: ":") {
                headers.append(.init(String(line[..<colon]), String(line[line.index(after: colon)...])))
            }
        }
        body = Array(bodyLines.joined(separator: "\n").utf8)
    }

    /// The path part of the target (as written).
    var path: String {
        String(target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)[0])
    }

    /// The query of the target, split on `&` and `=` and percent-decoded where it is encoded.
    var query: [SigV4Request.QueryItem] {
        let parts = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2 else { return [] }
        return parts[1].split(separator: "&").map { piece in
            let pair = piece.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = String(pair[0]), value = pair.count > 1 ? String(pair[1]) : ""
            return .init(name.removingPercentEncoding ?? name, value.removingPercentEncoding ?? value)
        }
    }

    func sigV4Request() -> SigV4Request {
        SigV4Request(method: method, path: path, query: query, headers: headers, payload: .bytes(body))
    }
}

/// A small, fast, seedable generator (SplitMix64) so random tests replay exactly.
struct SeededRandom: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

extension Array where Element == UInt8 {
    var hexString: String { map { String(format: "%02x", $0) }.joined() }
}
