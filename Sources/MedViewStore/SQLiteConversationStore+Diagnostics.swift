extension SQLiteConversationStore {
    /// Runs one raw statement and returns each row as column name to text (NULL columns are left
    /// out). For tests and diagnostics only.
    package func rawQuery(_ sql: String, _ binds: [String] = []) async throws -> [[String: String]] {
        try await connection.withConnection("rawQuery") { connection in
            try await connection.query(sql, binds.map { .text($0) }).map { row in
                var values: [String: String] = [:]
                for column in row.columns {
                    if let text = column.data.string { values[column.name] = text }
                }
                return values
            }
        }
    }
}
