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

    /// Each event is decoded as the parser completes it, where it lies (no copy, no list of events).
    mutating func decode(_ piece: ByteBufferView, emit: (ModelEvent) -> Void) throws(ModelError) {
        var failure: ModelError?
        var decoder = self.decoder
        defer { self.decoder = decoder }
        do {
            try parser.feed(piece) { event in
                do throws(ModelError) {
                    try decoder.decode(event, emit: emit)
                } catch {
                    failure = error
                    return false
                }
                return !decoder.isComplete
            }
        } catch {
            throw ModelError(kind: .failed, retryable: false, detail: "\(provider): invalid event stream (\(error))")
        }
        if let failure { throw failure }
    }

    mutating func finish(emit: (ModelEvent) -> Void) throws(ModelError) {
        for modelEvent in try decoder.finish() { emit(modelEvent) }
    }
}
