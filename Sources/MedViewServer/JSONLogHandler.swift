import Foundation
import Hummingbird
import MedViewCore
import Logging
import Synchronization

/// The request or connection a piece of work belongs to, carried by the task (and the tasks it
/// starts), so that every log line about it names it (``LogContext/metadataProvider``).
public enum LogContext {
    /// The WebSocket connection (`ws_…`) being served.
    @TaskLocal public static var connectionId: String?
    /// The HTTP request (`r_…`) being served.
    @TaskLocal public static var requestId: String?

    /// Adds `connection.id` / `request.id` to every log record made inside such work.
    public static let metadataProvider = Logger.MetadataProvider {
        var metadata: Logger.Metadata = [:]
        if let id = connectionId { metadata["connection.id"] = .string(id) }
        if let id = requestId { metadata["request.id"] = .string(id) }
        return metadata
    }
}

/// Writes whole lines to standard error, one `write` each, so that log lines and EMF records
/// from many tasks never interleave.
public final class LineWriter: Sendable {
    private let lock = Mutex(())
    private let handle: FileHandle?
    private let sink: (@Sendable (String) -> Void)?

    public init(handle: FileHandle = .standardError) {
        self.handle = handle
        self.sink = nil
    }

    /// Lines go to `sink` instead (tests).
    public init(sink: @escaping @Sendable (String) -> Void) {
        self.handle = nil
        self.sink = sink
    }

    public func write(_ line: String) {
        if let sink {
            sink(line)
            return
        }
        let data = Data((line + "\n").utf8)
        lock.withLock { _ in handle?.write(data) }
    }
}

/// One JSON object per log line, for CloudWatch Logs: `timestamp`, `level`, `logger`, `message`,
/// and the record's metadata (dot-separated keys, as the code logs them) at the top level. The
/// message is the code's fixed event name and metadata are ids, sizes, codes and timings: never
/// message text (the privacy tests check every line).
public struct JSONLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level
    public var metadataProvider: Logger.MetadataProvider?
    let label: String
    let writer: LineWriter

    public init(label: String, level: Logger.Level, writer: LineWriter, metadataProvider: Logger.MetadataProvider?) {
        self.label = label
        self.logLevel = level
        self.writer = writer
        self.metadataProvider = metadataProvider
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var all = metadata
        if let provided = metadataProvider?.get() { all.merge(provided) { $1 } }
        if let given = event.metadata { all.merge(given) { $1 } }
        var object: [String: Any] = [:]
        for (key, value) in all { object[key] = Self.json(value) }
        object["timestamp"] = Self.timestamp()
        object["level"] = event.level.rawValue
        object["logger"] = label
        object["message"] = event.message.description
        guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]) else { return }
        writer.write(String(decoding: data, as: UTF8.self))
    }

    static func json(_ value: Logger.MetadataValue) -> Any {
        switch value {
        case .string(let s): s
        case .stringConvertible(let c): c.description
        case .array(let a): a.map(json)
        case .dictionary(let d): d.mapValues(json)
        }
    }

    static func timestamp() -> String {
        Date().formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }
}

/// Gives each HTTP request an id (`r_…`) that its log lines carry.
struct RequestLogContextMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        try await LogContext.$requestId.withValue(Identifier.make("r")) {
            try await next(request, context)
        }
    }
}
