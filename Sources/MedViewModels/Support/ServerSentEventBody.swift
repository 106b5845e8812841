import MedViewCore
import NIOCore

/// A `text/event-stream` response body: ``ServerSentEventParser`` then a provider's
/// ``ServerSentEventDecoder``.
///
/// A 2xx response carries the stream unless its content type is JSON (an error body, or a server
/// that ignored `stream: true`). Bytes the parser refuses are a non-retryable failure; events
/// after the decoder reports completion are not decoded.
struct ServerSentEventBody<Decoder: ServerSentEventDecoder>: StreamBodyDecoder {
    /// Who answers (`anthropic`, `openai`), for error details.
    let provider: String
    private var parser = ServerSentEventParser()
    private var decoder: Decoder

    init(provider: String, decoder: Decoder) {
        self.provider = provider
        self.decoder = decoder
    }

    var isComplete: Bool { decoder.isComplete }

    func carriesStream(status: Int, contentType: String) -> Bool {
        (200..<300).contains(status) && !contentType.contains("json")
    }

    mutating func decode(_ piece: ByteBufferView, emit: (ModelEvent) -> Void) throws(ModelError) {
        let events: [ServerSentEvent]
        do {
            events = try parser.feed(piece)
        } catch {
            throw ModelError(kind: .failed, retryable: false, detail: "\(provider): invalid event stream (\(error))")
        }
        for event in events {
            for modelEvent in try decoder.decode(event) { emit(modelEvent) }
            if decoder.isComplete { return }
        }
    }

    mutating func finish(emit: (ModelEvent) -> Void) throws(ModelError) {
        for modelEvent in try decoder.finish() { emit(modelEvent) }
    }
}
