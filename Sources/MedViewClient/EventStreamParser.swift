/// Splits a `text/event-stream` body into the `data` of its events, as the bytes arrive.
///
/// Lines end with CRLF, LF or CR; an event ends with a blank line; comment lines (`: keep-alive`)
/// and the `event`, `id` and `retry` fields are skipped (the JSON carries its own `type` and `seq`).
/// A line longer than `maxLineBytes` is a protocol violation and throws.
struct EventStreamParser: Sendable {
    var maxLineBytes = 1 << 20
    private var line: [UInt8] = []
    private var data: [String] = []
    private var lastWasCR = false

    /// Feeds bytes and returns the `data` of every event they complete.
    mutating func feed(_ bytes: some Sequence<UInt8>) throws(MedViewClientError) -> [String] {
        var events: [String] = []
        for byte in bytes {
            if lastWasCR {
                lastWasCR = false
                if byte == UInt8(ascii: "\n") { continue }
            }
            switch byte {
            case UInt8(ascii: "\n"):
                finishLine(into: &events)
            case UInt8(ascii: "\r"):
                lastWasCR = true
                finishLine(into: &events)
            default:
                guard line.count < maxLineBytes else { throw .invalidResponse("an event stream line that is too long") }
                line.append(byte)
            }
        }
        return events
    }

    private mutating func finishLine(into events: inout [String]) {
        defer { line.removeAll(keepingCapacity: true) }
        if line.isEmpty {
            if !data.isEmpty { events.append(data.joined(separator: "\n")) }
            data.removeAll()
            return
        }
        if line.first == UInt8(ascii: ":") { return }
        let text = String(decoding: line, as: UTF8.self)
        let field: Substring
        var value: Substring
        if let colon = text.firstIndex(of: ":") {
            field = text[..<colon]
            value = text[text.index(after: colon)...]
            if value.first == " " { value = value.dropFirst() }
        } else {
            field = text[...]
            value = ""
        }
        if field == "data" { data.append(String(value)) }
    }
}
