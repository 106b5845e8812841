import Foundation
import HTTPTypes
import Hummingbird
import MedViewCore
import MedViewProtocol

/// Writes events as Server-Sent Events: `id: <seq>`, `event: <type>`, `data: <json>`.
enum SSE {
    static let headers: HTTPFields = [
        .contentType: "text/event-stream; charset=utf-8",
        .cacheControl: "no-cache, no-store, no-transform",
        HTTPField.Name("X-Accel-Buffering")!: "no",
    ]

    static func frame(_ event: ServerEvent) -> String {
        var text = ""
        if let seq = event.seq { text += "id: \(seq)\n" }
        text += "event: \(event.wireType)\ndata: \(event.jsonString())\n\n"
        return text
    }

    /// A streaming body: the `prelude` events (an `ack`), then every event of `stream` after `after`,
    /// with a keep-alive comment whenever `keepAlive` passes without one. Always ends with `finish`.
    static func body(stream: ResponseStream, after: Int, prelude: [ServerEvent], keepAlive: Duration) -> ResponseBody {
        ResponseBody { writer in
            var head = "retry: 2000\n\n"
            for event in prelude { head += frame(event) }
            try await writer.write(ByteBuffer(string: head))
            var last = after
            loop: while true {
                switch await stream.next(after: last, timeout: keepAlive) {
                case .event(let event):
                    try await writer.write(ByteBuffer(string: frame(event)))
                    last = event.seq ?? last
                case .timeout:
                    try await writer.write(ByteBuffer(string: ": keep-alive\n\n"))
                case .finished:
                    break loop
                }
            }
            try await writer.finish(nil)
        }
    }
}
