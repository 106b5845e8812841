import MedViewAWS
import MedViewCore
import NIOCore

/// An AWS `application/vnd.amazon.eventstream` response body: ``EventStreamDecoder`` then an
/// ``EventStreamMessageMapper``.
///
/// Only a 200 carries the stream. The body is read to its end (usage follows the stop reason).
/// Frames that do not decode, a body that ends mid-frame, and a body that ends without a stop
/// reason are retryable failures (the retry still happens only before the first delta).
struct EventStreamBody<Mapper: EventStreamMessageMapper>: StreamBodyDecoder {
    /// Who answers (`bedrock`), for error details.
    let provider: String
    private var decoder = EventStreamDecoder()
    private var mapper: Mapper

    init(provider: String, mapper: Mapper) {
        self.provider = provider
        self.mapper = mapper
    }

    var isComplete: Bool { false }

    func carriesStream(status: Int, contentType: String) -> Bool {
        status == 200
    }

    mutating func decode(_ piece: ByteBufferView, emit: (ModelEvent) -> Void) throws(ModelError) {
        do throws(EventStreamError) {
            try decoder.append(piece)
        } catch {
            throw invalid(error)
        }
        while let message = try nextMessage() {
            try mapper.map(message, emit: emit)
        }
    }

    mutating func finish(emit: (ModelEvent) -> Void) throws(ModelError) {
        do throws(EventStreamError) {
            try decoder.finish()
        } catch {
            throw invalid(error)
        }
        guard mapper.stopped else {
            throw ModelError(kind: .failed, retryable: true, detail: "\(provider) stream ended without a stop reason")
        }
    }

    private mutating func nextMessage() throws(ModelError) -> EventStreamMessage? {
        do throws(EventStreamError) {
            return try decoder.next()
        } catch {
            throw invalid(error)
        }
    }

    private func invalid(_ error: EventStreamError) -> ModelError {
        ModelError(kind: .failed, retryable: true, detail: "\(provider) event stream: \(error)")
    }
}
