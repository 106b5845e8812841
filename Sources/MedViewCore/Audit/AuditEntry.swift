import Crypto
import Foundation

/// An ``AuditEvent`` as stored: numbered, and chained to the entry before it by hash, so that an
/// edited, deleted or inserted entry is found by ``AuditChain/verify(_:)``.
public struct AuditEntry: Sendable, Equatable, Codable {
    /// 1, 2, 3, … with no gaps.
    public var seq: Int64
    public var event: AuditEvent
    /// The previous entry's `hash` (64 zeros for the first).
    public var previousHash: String
    /// SHA-256 (hex) of `previousHash` and this entry's canonical form.
    public var hash: String

    public init(seq: Int64, event: AuditEvent, previousHash: String, hash: String) {
        self.seq = seq
        self.event = event
        self.previousHash = previousHash
        self.hash = hash
    }
}

/// The hash chain of the audit log.
public enum AuditChain {
    /// The `previousHash` of the first entry.
    public static let genesis = String(repeating: "0", count: 64)

    /// Builds the entry that follows `previous` (or starts the chain).
    public static func entry(after previous: (seq: Int64, hash: String)?, event: AuditEvent) -> AuditEntry {
        let seq = (previous?.seq ?? 0) + 1
        let previousHash = previous?.hash ?? genesis
        return AuditEntry(seq: seq, event: event, previousHash: previousHash, hash: hash(seq: seq, event: event, previousHash: previousHash))
    }

    /// The entries that record `events`, in order, following `previous` (or starting the chain).
    public static func entries(after previous: (seq: Int64, hash: String)?, events: [AuditEvent]) -> [AuditEntry] {
        var previous = previous
        var entries: [AuditEntry] = []
        entries.reserveCapacity(events.count)
        for event in events {
            let entry = entry(after: previous, event: event)
            entries.append(entry)
            previous = (entry.seq, entry.hash)
        }
        return entries
    }

    /// The hash an entry with these contents must carry.
    public static func hash(seq: Int64, event: AuditEvent, previousHash: String) -> String {
        // A fixed, unambiguous form: each field on its own line, escaped, times in milliseconds.
        let fields: [String] = [
            previousHash,
            String(seq),
            String(Int64((event.at.timeIntervalSince1970 * 1000).rounded())),
            event.action.rawValue,
            event.userId ?? "",
            event.channelId ?? "",
            event.sourceAddress ?? "",
            event.record ?? "",
            event.outcome.rawValue,
            event.reason ?? "",
        ]
        let canonical = fields.map(escaped).joined(separator: "\n")
        var hex = [UInt8]()
        hex.reserveCapacity(64)
        for byte in SHA256.hash(data: Data(canonical.utf8)) {
            hex.append(hexDigits[Int(byte >> 4)])
            hex.append(hexDigits[Int(byte & 15)])
        }
        return String(decoding: hex, as: UTF8.self)
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)

    /// A field with `\` doubled and line feeds written `\n` (most fields hold neither).
    private static func escaped(_ field: String) -> String {
        guard field.utf8.contains(where: { $0 == 0x5C || $0 == 0x0A }) else { return field }
        return field.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\n", with: "\\n")
    }

    /// What ``verify(_:)`` found.
    public enum Verdict: Sendable, Equatable, CustomStringConvertible {
        /// Every entry is in place: `count` entries.
        case intact(count: Int)
        /// The entry numbered `seq` was changed after it was written.
        case altered(seq: Int64)
        /// Entries before `seq` are missing (the entry there expected `expected`).
        case missing(expected: Int64, found: Int64)
        /// An entry was put in that the chain does not hold, at `seq`.
        case inserted(seq: Int64)

        public var description: String {
            switch self {
            case .intact(let count): "intact: \(count) entries, every hash chained"
            case .altered(let seq): "altered: entry \(seq) does not match its hash"
            case .missing(let expected, let found): "missing: entries \(expected) to \(found - 1) are gone (entry \(found) follows entry \(expected - 1))"
            case .inserted(let seq): "inserted: an entry at \(seq) is not part of the chain"
            }
        }
    }

    /// Checks `entries` (in stored order) and reports the first problem.
    public static func verify(_ entries: [AuditEntry]) -> Verdict {
        var previous: AuditEntry?
        for entry in entries {
            let expectedSeq = (previous?.seq ?? 0) + 1
            if entry.seq < expectedSeq { return .inserted(seq: entry.seq) }
            if entry.seq > expectedSeq { return .missing(expected: expectedSeq, found: entry.seq) }
            let ownHashHolds = hash(seq: entry.seq, event: entry.event, previousHash: entry.previousHash) == entry.hash
            if entry.previousHash != (previous?.hash ?? genesis) {
                // A well-formed entry that does not follow its predecessor was put in; a changed
                // entry fails its own hash.
                return ownHashHolds ? .inserted(seq: entry.seq) : .altered(seq: entry.seq)
            }
            if !ownHashHolds { return .altered(seq: entry.seq) }
            previous = entry
        }
        return .intact(count: entries.count)
    }
}
