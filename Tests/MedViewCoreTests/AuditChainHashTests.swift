import Foundation
import MedViewCore
import Testing

/// Audit logs written before are verified with today's code: the hash of an entry is pinned.
@Suite struct AuditChainHashTests {
    @Test func anEntrysHashIsTheSHA256OfItsCanonicalFormInLowercaseHex() {
        // Expected values: sha256 of the fields joined by line feeds, `\` doubled and line feeds
        // written `\n` (computed outside Swift, with Python's hashlib).
        let first = AuditEvent(at: Date(timeIntervalSince1970: 1_800_000_000.123), action: .messageSent, userId: "alice", channelId: "c_1", sourceAddress: "127.0.0.1", record: "s_x\nline", outcome: .success)
        #expect(AuditChain.hash(seq: 7, event: first, previousHash: "prev\\hash") == "8f0a6d6bdb6cb96b9669ccadff429b427025a8c29ed3162720819ea6951ae2f3")
        let second = AuditEvent(at: Date(timeIntervalSince1970: 0), action: .connectionOpened, userId: "bob", outcome: .refused, reason: "why not")
        #expect(AuditChain.hash(seq: 1, event: second, previousHash: "") == "98d5d7c245af15baa1f1ba96e91be53700b1a745636cc063d729a23cfdd14c0e")
    }
}
