import Foundation

/// The string transformations of SigV4's canonical request: URI encoding, path normalization,
/// header value trimming, hex and the `X-Amz-Date` format.
enum SigV4Canonical {
    /// RFC 3986 percent-encoding of the UTF-8 bytes of `string`: everything except
    /// `A–Z a–z 0–9 - . _ ~` (and `/` if `keepSlash`) becomes `%XY` with upper-case hex.
    static func uriEncode(_ string: String, keepSlash: Bool = false) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(string.utf8.count)
        for byte in string.utf8 {
            if isUnreserved(byte) || (keepSlash && byte == UInt8(ascii: "/")) {
                out.append(byte)
            } else {
                out.append(UInt8(ascii: "%"))
                out.append(upperHex[Int(byte >> 4)])
                out.append(upperHex[Int(byte & 0x0F)])
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    @inline(__always)
    static func isUnreserved(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"),
             UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
            true
        default:
            false
        }
    }

    /// The canonical URI of `path`.
    ///
    /// - `normalize`: remove `.` and `..` segments and empty segments (`//`), keeping a leading
    ///   slash, and a trailing one when the path ends with `/` and something is left.
    /// - `encode`: URI-encode the result (keeping `/`); for every service but S3 this encodes
    ///   the already-encoded wire path a second time.
    static func canonicalURI(_ path: String, normalize: Bool, encode: Bool) -> String {
        var result = path.isEmpty ? "/" : path
        if normalize {
            result = normalizePath(result)
        }
        if encode {
            result = uriEncode(result, keepSlash: true)
        }
        return result.isEmpty ? "/" : result
    }

    /// Works on UTF-8 bytes, so a combining mark after `/` does not hide the slash.
    static func normalizePath(_ path: String) -> String {
        let slash = UInt8(ascii: "/"), dot = UInt8(ascii: ".")
        let bytes = Array(path.utf8)
        var segments: [ArraySlice<UInt8>] = []
        for segment in bytes.split(separator: slash, omittingEmptySubsequences: true) {
            if segment.count == 1, segment.first == dot {
                continue
            } else if segment.count == 2, segment.allSatisfy({ $0 == dot }) {
                if !segments.isEmpty { segments.removeLast() }
            } else {
                segments.append(segment)
            }
        }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        if bytes.first == slash { out.append(slash) }
        for (index, segment) in segments.enumerated() {
            if index > 0 { out.append(slash) }
            out.append(contentsOf: segment)
        }
        if bytes.last == slash, !segments.isEmpty { out.append(slash) }
        return out.isEmpty ? "/" : String(decoding: out, as: UTF8.self)
    }

    /// A header value with leading and trailing whitespace removed and every inner run of
    /// whitespace (space, tab, CR, LF, VT, FF: folded header lines included) replaced by one space.
    static func trimAll(_ value: String) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(value.utf8.count)
        var pendingSpace = false
        for byte in value.utf8 {
            switch byte {
            case 0x20, 0x09, 0x0A, 0x0D, 0x0B, 0x0C:
                pendingSpace = !out.isEmpty
            default:
                if pendingSpace {
                    out.append(0x20)
                    pendingSpace = false
                }
                out.append(byte)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Lower-case hex of `bytes`.
    static func hex(_ bytes: some Sequence<UInt8>) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(64)
        for byte in bytes {
            out.append(lowerHex[Int(byte >> 4)])
            out.append(lowerHex[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// `a` sorts before `b` comparing UTF-8 bytes (SigV4 sorts by code point, not by locale).
    static func bytewiseLess(_ a: String, _ b: String) -> Bool {
        a.utf8.lexicographicallyPrecedes(b.utf8)
    }

    private static let upperHex: [UInt8] = Array("0123456789ABCDEF".utf8)
    private static let lowerHex: [UInt8] = Array("0123456789abcdef".utf8)
}

/// A signing time in the two forms SigV4 uses: `20150830T123600Z` and `20150830`.
struct AmzDate: Sendable, Hashable {
    /// `yyyyMMdd'T'HHmmss'Z'` in UTC.
    let timestamp: String
    /// `yyyyMMdd` in UTC (the credential scope date).
    let day: String

    /// The UTC time of `date`, truncated to whole seconds (no calendar or locale involved).
    init(_ date: Date) {
        let seconds = Int64((date.timeIntervalSince1970).rounded(.down))
        let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let secondOfDay = seconds - days * 86_400
        // Days since 1970-01-01 to a proleptic Gregorian civil date (era-based method).
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1_460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let dayOfMonth = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        func pad(_ value: Int64, _ width: Int) -> String {
            let digits = String(value)
            return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
        }
        day = pad(year, 4) + pad(month, 2) + pad(dayOfMonth, 2)
        timestamp = day + "T" + pad(secondOfDay / 3_600, 2) + pad(secondOfDay / 60 % 60, 2) + pad(secondOfDay % 60, 2) + "Z"
    }
}
