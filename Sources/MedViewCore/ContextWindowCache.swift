import Foundation
import MedViewSafety
import Synchronization

/// The latest finished messages of recently active conversations, kept in memory so that a new
/// message reads only the conversation's last few messages from the store, not its whole window:
/// the cost of a message stays the same however long the conversation is (issue 16, item 4).
///
/// How a cached window stays true to the store:
/// - only finished messages are cached (a `streaming` message anywhere in a window keeps that
///   window out of the cache), and the store never changes a finished message (``ConversationStore/finishTurn(_:)``
///   ends only a turn still streaming);
/// - each new message reads the store's latest ``probeMessages`` messages (one small read, fresh
///   texts and safety state included); the cached window is used only when the probe's oldest
///   messages are the window's newest ones, id by id, so nothing was added in between, whichever
///   process added it; otherwise the window is read whole again;
/// - messages are deleted only with their conversation, and ``remove(conversationId:)`` drops it.
///
/// Beside a window it keeps the medication context decoded from the conversation's saved safety
/// state, with that state's text: it is given back only while the store's state is the same text.
///
/// Memory: at most ``capacity`` conversations, the least recently used leaving first, and none
/// kept past ``idleLifetime`` (decrypted PHI does not linger in memory for conversations nobody
/// uses). Holds no key and writes nothing.
public final class ContextWindowCache: Sendable {
    /// Messages each new message reads from the store to check and extend the cached window: two
    /// that overlap the window (the proof of continuity) plus one new turn (its two messages).
    public static let probeMessages = 4

    /// Most conversations kept.
    public let capacity: Int
    /// A conversation not used for this long leaves the cache.
    public let idleLifetime: Duration

    private struct Entry {
        var userId: String
        var window: [StoredMessage]
        var usedAt: ContinuousClock.Instant
        /// The saved safety state the window was used with, and the medication context it decodes
        /// to (decoding it again for every message was about 1 % of the server's CPU).
        var medications: SavedMedications?
    }

    /// A conversation's saved safety state (as stored) and the medication context it holds.
    public struct SavedMedications: Sendable {
        public var state: String
        public var context: MedicationContext

        public init(state: String, context: MedicationContext) {
            self.state = state
            self.context = context
        }
    }

    private struct State {
        var entries: [String: Entry] = [:]
    }

    private let state = Mutex(State())

    public init(capacity: Int = 2000, idleLifetime: Duration = .seconds(600)) {
        self.capacity = max(0, capacity)
        self.idleLifetime = idleLifetime
    }

    /// The earlier messages a new answer sees: the cached window extended by `probe` (the store's
    /// latest messages, oldest first, this turn's own left out), or `nil` when the cache cannot
    /// vouch for it (not cached, another user's, expired, or a gap between the two).
    public func window(conversationId: String, userId: String, probe: [StoredMessage], limit: Int) -> [StoredMessage]? {
        let now = ContinuousClock.now
        return state.withLock { state -> [StoredMessage]? in
            guard var entry = state.entries[conversationId], entry.userId == userId else { return nil }
            guard now - entry.usedAt <= idleLifetime else {
                state.entries[conversationId] = nil
                return nil
            }
            guard let extended = Self.extend(entry.window, with: probe, limit: limit) else { return nil }
            entry.usedAt = now
            state.entries[conversationId] = entry
            return extended
        }
    }

    /// The medication context decoded from `state` when this conversation's cached entry was kept
    /// with exactly that saved state (so nothing needs decoding); `nil` otherwise. Does not touch
    /// the entry's age: ``window(conversationId:userId:probe:limit:)`` does.
    public func medications(conversationId: String, userId: String, state: String) -> MedicationContext? {
        self.state.withLock { cache -> MedicationContext? in
            guard let entry = cache.entries[conversationId], entry.userId == userId, let kept = entry.medications, kept.state == state else { return nil }
            return kept.context
        }
    }

    /// Keeps `window` (the earlier messages of a new answer, oldest first) for the conversation's
    /// next message, with the saved safety state it was used with; a window with a message still
    /// streaming is not kept.
    public func store(conversationId: String, userId: String, window: [StoredMessage], medications: SavedMedications? = nil) {
        guard capacity > 0 else { return }
        guard !window.contains(where: { $0.status == .streaming }) else {
            remove(conversationId: conversationId)
            return
        }
        let now = ContinuousClock.now
        state.withLock { state in
            state.entries[conversationId] = Entry(userId: userId, window: window, usedAt: now, medications: medications)
            guard state.entries.count > capacity else { return }
            // Over capacity: the expired and the least recently used leave (a batch, so that
            // eviction is not a scan on every message).
            let keep = capacity - max(1, capacity / 10)
            let byUse = state.entries.sorted { $0.value.usedAt > $1.value.usedAt }
            state.entries = Dictionary(uniqueKeysWithValues: byUse.prefix(keep).filter { now - $0.value.usedAt <= idleLifetime }.map { ($0.key, $0.value) })
        }
    }

    /// Forgets the conversation (it was erased).
    public func remove(conversationId: String) {
        state.withLock { _ = $0.entries.removeValue(forKey: conversationId) }
    }

    /// Conversations cached now.
    public var count: Int {
        state.withLock { $0.entries.count }
    }

    /// `window` followed by the messages of `probe` it does not have, at most `limit` of them
    /// all (the newest); `nil` unless `probe` starts inside `window` and agrees with its tail.
    static func extend(_ window: [StoredMessage], with probe: [StoredMessage], limit: Int) -> [StoredMessage]? {
        guard let first = probe.first else {
            // The store has no earlier message: only an empty window agrees.
            return window.isEmpty ? [] : nil
        }
        guard let start = window.lastIndex(where: { $0.id == first.id }) else { return nil }
        let overlap = window[start...]
        // The probe must contain the whole tail of the window from `start`, in order, and more.
        guard overlap.count <= probe.count, zip(overlap, probe).allSatisfy({ $0.id == $1.id }) else { return nil }
        // Messages of the window older than the probe, then the probe (its texts are the store's).
        let combined = Array(window[..<start]) + probe
        return Array(combined.suffix(max(0, limit)))
    }
}
