import Foundation
import MedViewCore
import SQLiteNIO

extension StoreRow {
    /// The column's text; throws if it is missing or not text. A BLOB column (text selected
    /// `CAST(… AS BLOB)`, so that it is read with its length) is decoded as UTF-8, exactly.
    func text(_ column: String) throws(StoreError) -> String {
        switch self.column(column) {
        case .text(let value)?:
            return value
        case .blob(let buffer)?:
            guard let value = String(validating: buffer.readableBytesView, as: UTF8.self) else { throw Self.unexpected(column) }
            return value
        default:
            throw Self.unexpected(column)
        }
    }

    /// The column's integer; throws if it is missing or not an integer.
    func int(_ column: String) throws(StoreError) -> Int {
        guard case .integer(let value)? = self.column(column) else { throw Self.unexpected(column) }
        return Int(value)
    }

    /// The column as a date stored as seconds since 1970; throws if it is missing or not a number.
    func date(_ column: String) throws(StoreError) -> Date {
        guard let value = self.column(column), !value.isNull, let seconds = value.double else {
            throw Self.unexpected(column)
        }
        return Date(timeIntervalSince1970: seconds)
    }

    /// The column decoded as a string-backed enum; throws if the value is unknown.
    func value<T: RawRepresentable>(_ column: String, as type: T.Type) throws(StoreError) -> T where T.RawValue == String {
        guard let value = T(rawValue: try text(column)) else { throw Self.unexpected(column) }
        return value
    }

    private static func unexpected(_ column: String) -> StoreError {
        .unavailable("unexpected value in column \(column)")
    }
}

extension Conversation {
    /// The conversation in a row of `id, user_id, title, created_at, updated_at`.
    init(row: some StoreRow) throws(StoreError) {
        self.init(
            id: try row.text("id"),
            userId: try row.text("user_id"),
            title: try row.text("title"),
            createdAt: try row.date("created_at"),
            updatedAt: try row.date("updated_at")
        )
    }
}

extension StoredMessage {
    /// The message in a row of `id, conversation_id, user_id, role, text, status, stream_id, created_at`.
    init(row: some StoreRow) throws(StoreError) {
        self.init(
            id: try row.text("id"),
            conversationId: try row.text("conversation_id"),
            userId: try row.text("user_id"),
            role: try row.value("role", as: MessageRole.self),
            text: try row.text("text"),
            status: try row.value("status", as: MessageStatus.self),
            streamId: try row.text("stream_id"),
            createdAt: try row.date("created_at")
        )
    }
}
