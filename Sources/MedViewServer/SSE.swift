import Foundation
import HTTPTypes
import Hummingbird
import MedViewCore
import MedViewProtocol

/// Writes events as Server-Sent Events: `id: <seq>`, `event: <type>`, `data: <json>`.
package enum SSE {
    package static let headers: HTTPFields = [
        .contentType: "text/event-stream; charset=utf-8",
        .cacheControl: "no-cache, no-store, no-transform",
        HTTPField.Name("X-Accel-Buffering")!: "no",
    ]

    /// The timer for keep-alives every `interval`: it looks for due ones every eighth of the
    /// interval, at most every second (a keep-alive comes at most that late).
    static func keepAliveTimer(for interval: Duration) -> CoarseTimer {
        CoarseTimer(tick: min(interval / 8, .seconds(1)))
    }

    package static func frame(_ event: ServerEvent) -> String {
        var text = ""
        if let seq = event.seq { text += "id: \(seq)\n" }
        text += "event: \(event.wireType)\ndata: \(event.jsonString())\n\n"
        return text
    }

    /// A streaming body: the `prelude` events (an `ack`), then every event of `stream` after `after`,
    /// with a keep-alive comment whenever `keepAlive` passes without one (timed by `keepAliveTimer`,
    /// shared by every response: see ``keepAliveTimer(for:)``). Always ends with `finish`.
    ///
    /// `metrics` counts the open stream and each chunk delivered; `acceptedAt` (a new `chat.send`)
    /// also measures the first chunk's time as the patient sees it.
    static func body(stream: ResponseStream, after: Int, prelude: [ServerEvent], keepAlive: Duration, keepAliveTimer: CoarseTimer, metrics: ServerMetrics? = nil, acceptedAt: ContinuousClock.Instant? = nil) -> ResponseBody {
        // The body is written after the route returned, outside its task: its lines name the
        // request again.
        let requestId = LogContext.requestId
        return ResponseBody { writer in try await LogContext.$requestId.withValue(requestId) {
            metrics?.connectionOpened(.sse)
            defer { metrics?.connectionClosed(.sse) }
            var head = "retry: 2000\n\n"
            for event in prelude { head += frame(event) }
            try await writer.write(ByteBuffer(string: head))
            var last = after
            var firstChunkFrom = acceptedAt
            // The keep-alive is timed by the server's shared timer, not by a timer per wait.
            let reader = stream.reader(idle: keepAlive, timer: keepAliveTimer)
            loop: while true {
                switch await reader.nextBatch(after: last) {
                case .events(let events):
                    // What was published while the last write went out leaves in one write.
                    var text = ""
                    for event in events { text += frame(event) }
                    try await writer.write(ByteBuffer(string: text))
                    let now = ContinuousClock.now
                    for event in events {
                        last = event.seq ?? last
                        guard let metrics, case .streamChunk(let chunk) = event else { continue }
                        if let published = stream.publishedAt(seq: last) {
                            metrics.delivered(chunkOf: chunk.text.unicodeScalars.count, after: now - published, transport: .sse)
                        }
                        if let from = firstChunkFrom {
                            metrics.firstChunkDelivered(after: now - from, transport: .sse)
                            firstChunkFrom = nil
                        }
                    }
                case .timeout:
                    try await writer.write(ByteBuffer(string: ": keep-alive\n\n"))
                case .finished:
                    break loop
                }
            }
            try await writer.finish(nil)
        } }
    }
}

/// Counts each Server-Sent Events request (`Accept: text/event-stream`) that is refused, by
/// reason, as a failed SSE connection attempt; accepted ones are counted where the stream starts.
struct SSEAttemptMiddleware<Context: RequestContext>: RouterMiddleware {
    let metrics: ServerMetrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let accept = request.headers[.accept], accept.contains("text/event-stream") else {
            return try await next(request, context)
        }
        do {
            return try await next(request, context)
        } catch let error as APIError {
            metrics.connectionAttempt(.sse, Self.result(for: error.code))
            throw error
        }
    }

    static func result(for code: ErrorCode) -> ServerMetrics.ConnectionResult {
        switch code {
        case .unauthorized, .tokenExpired: .authRefused
        case .tooManyConnections, .tooManyStreams, .rateLimited: .limit
        case .originNotAllowed: .originRefused
        default: .protocolError
        }
    }
}
