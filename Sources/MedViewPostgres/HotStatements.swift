import Foundation
import MedViewCore
import PostgresNIO

/// The statements every message runs, prepared once per connection (a named statement that
/// PostgresNIO prepares on a connection's first use): the server then binds and runs them
/// without parsing, analysing and planning their text again for every message. Their SQL is
/// fixed text; every value is bound.
enum HotStatements {
    /// A conversation's safety state and its latest `limit + 1` messages, newest first
    /// (``PostgresConversationStore/recentContext(conversationId:userId:limit:)``).
    struct RecentContext: PostgresPreparedStatement {
        static let name = "medview_recent_context_v1"
        static let sql = """
            SELECT c.safety_state, m.id, m.conversation_id, m.user_id, m.role, m.text, m.status, m.stream_id, m.created_at
            FROM conversations c
            LEFT JOIN LATERAL (
                SELECT id, conversation_id, user_id, role, text, status, stream_id, created_at, seq FROM messages
                WHERE conversation_id = c.id AND user_id = c.user_id ORDER BY seq DESC LIMIT $3
            ) m ON true
            WHERE c.id = $1 AND c.user_id = $2
            ORDER BY m.seq DESC
            """
        typealias Row = (String?, String?, String?, String?, String?, String?, String?, String?, Date?)

        var conversationId: String
        var userId: String
        var rows: Int

        func makeBindings() throws -> PostgresBindings {
            var bindings = PostgresBindings(capacity: 3)
            bindings.append(conversationId)
            bindings.append(userId)
            bindings.append(rows)
            return bindings
        }

        func decodeRow(_ row: PostgresRow) throws -> Row {
            try row.decode(Row.self)
        }
    }

    /// `medview_begin_turn` (migration 7): the new turn decided and written in one call.
    struct BeginTurn: PostgresPreparedStatement {
        static let name = "medview_begin_turn_v1"
        static let sql = "SELECT medview_begin_turn($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"
        typealias Row = String

        var streamId: String
        var userId: String
        var conversationId: String
        var clientMessageId: String
        var ownerInstanceId: String?
        var isNewConversation: Bool
        var title: String
        var created: Date
        var updated: Date
        var userMessageId: String
        var userText: String
        var userCreated: Date
        var assistantMessageId: String
        var assistantCreated: Date
        var streamLimit: Int?
        var lockClass: Int32
        var aliveSince: Date

        func makeBindings() throws -> PostgresBindings {
            var bindings = PostgresBindings(capacity: 17)
            bindings.append(streamId)
            bindings.append(userId)
            bindings.append(conversationId)
            bindings.append(clientMessageId)
            bindings.append(ownerInstanceId)
            bindings.append(isNewConversation)
            bindings.append(title)
            bindings.append(created)
            bindings.append(updated)
            bindings.append(userMessageId)
            bindings.append(userText)
            bindings.append(userCreated)
            bindings.append(assistantMessageId)
            bindings.append(assistantCreated)
            bindings.append(streamLimit)
            bindings.append(lockClass)
            bindings.append(aliveSince)
            return bindings
        }

        func decodeRow(_ row: PostgresRow) throws -> Row {
            try row.decode(String.self)
        }
    }

    /// A turn's ending in one statement (``PostgresConversationStore/finishTurn(_:)``): the answer's
    /// text and status, the replay log past the ending cut and the rest upserted, and the notice
    /// to followers, all only if the answer is the user's and still streaming.
    struct FinishTurn: PostgresPreparedStatement {
        static let name = "medview_finish_turn_v1"
        static let sql = """
            WITH ended AS (
                UPDATE messages SET text = $1, status = $2
                WHERE stream_id = $3 AND user_id = $4 AND role = 'assistant' AND status = 'streaming'
                RETURNING seq
            ), cut AS (
                DELETE FROM stream_events
                WHERE stream_id = $3 AND seq > $5 AND EXISTS (SELECT 1 FROM ended)
            ), logged AS (
                INSERT INTO stream_events (stream_id, seq, json)
                SELECT $3, e.seq::integer, e.json FROM unnest($6::bigint[], $7::text[]) AS e(seq, json)
                WHERE EXISTS (SELECT 1 FROM ended)
                ON CONFLICT (stream_id, seq) DO UPDATE SET json = excluded.json
            )
            SELECT pg_notify($8, $9) FROM ended
            """
        typealias Row = Void

        var text: String
        var status: String
        var streamId: String
        var userId: String
        var lastSeq: Int
        var seqs: [Int]
        var payloads: [String]
        var channel: String
        var notice: String

        func makeBindings() throws -> PostgresBindings {
            var bindings = PostgresBindings(capacity: 9)
            bindings.append(text)
            bindings.append(status)
            bindings.append(streamId)
            bindings.append(userId)
            bindings.append(lastSeq)
            bindings.append(seqs)
            bindings.append(payloads)
            bindings.append(channel)
            bindings.append(notice)
            return bindings
        }

        func decodeRow(_ row: PostgresRow) throws -> Row {}
    }

    /// `medview_audit_append` (``PostgresMigration/repeatable``): `entries` appended if the chain's last entry is
    /// `last` (`nil`: the log is empty); the row says whether they were, and the last entry after.
    struct AuditAppend: PostgresPreparedStatement {
        static let name = "medview_audit_append_v1"
        static let sql = "SELECT o_written, o_seq, o_hash FROM medview_audit_append($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
        typealias Row = (Bool, Int64?, String?)

        var lockClass: Int32
        var last: (seq: Int64, hash: String)?
        var entries: [AuditEntry]

        func makeBindings() throws -> PostgresBindings {
            var bindings = PostgresBindings(capacity: 14)
            bindings.append(lockClass)
            bindings.append(last?.seq)
            bindings.append(last?.hash)
            // A missing optional is sent as '' and stored as NULL (the hash treats both alike).
            let events = entries.map(\.event)
            bindings.append(entries.map(\.seq))
            bindings.append(events.map { PostgresAuditStore.milliseconds($0.at) })
            bindings.append(events.map(\.action.rawValue))
            bindings.append(events.map { $0.userId ?? "" })
            bindings.append(events.map { $0.channelId ?? "" })
            bindings.append(events.map { $0.sourceAddress ?? "" })
            bindings.append(events.map { $0.record ?? "" })
            bindings.append(events.map(\.outcome.rawValue))
            bindings.append(events.map { $0.reason ?? "" })
            bindings.append(entries.map(\.previousHash))
            bindings.append(entries.map(\.hash))
            return bindings
        }

        func decodeRow(_ row: PostgresRow) throws -> Row {
            try row.decode(Row.self)
        }
    }
}
