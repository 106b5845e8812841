import Foundation
import MedViewCore
import MedViewProtocol

/// A deterministic model for tests, benchmarks and development.
///
/// It answers with fixed text cut into deltas of a few Unicode scalars (so grapheme clusters are
/// split across deltas, as real models split them), waiting `deltaDelay` before each delta.
/// Directives in the patient's message steer it (scripted model only):
///
/// | directive | effect |
/// |---|---|
/// | `[[say:TEXT]]` | answer with TEXT |
/// | `[[repeat:N]]` | repeat the answer N times |
/// | `[[delay:MS]]` | wait MS milliseconds before each delta |
/// | `[[delta:N]]` | N Unicode scalars per delta |
/// | `[[fail:before]]` | fail before the first delta (model error, retryable) |
/// | `[[fail:after:N]]` | fail after N deltas (model stream error, retryable) |
/// | `[[throttle]]` | fail before the first delta as throttled (retryable) |
/// | `[[context]]` | answer with a description of the context it was given |
public struct ScriptedModel: ChatModel {
    /// Defaults for every answer; directives override them per message.
    public struct Configuration: Sendable, Equatable {
        /// The pause before each delta.
        public var deltaDelay: Duration
        /// Unicode scalars per delta.
        public var scalarsPerDelta: Int
        /// Fixed answer text; `nil` uses the built-in paragraphs.
        public var reply: String?

        /// A configuration; the defaults give a lively demo pace.
        public init(deltaDelay: Duration = .milliseconds(15), scalarsPerDelta: Int = 6, reply: String? = nil) {
            self.deltaDelay = deltaDelay
            self.scalarsPerDelta = max(1, scalarsPerDelta)
            self.reply = reply
        }
    }

    /// Pace and reply.
    public let configuration: Configuration
    /// `scripted`, a demo model.
    public let descriptor = ModelDescriptor(provider: "scripted", id: "scripted-v1", demo: true)

    /// A model answering as `configuration` says.
    public init(configuration: Configuration = .init()) {
        self.configuration = configuration
    }

    /// The built-in answers; one is chosen by a hash of the message, so the same message always gets the same answer.
    public static let paragraphs = [
        "This answer comes from the scripted test model, not from a clinician or a medical model. In general, keeping a simple diary of symptoms, sleep, meals and medicines helps your care team see patterns. Bring it to your next appointment, and call your doctor sooner if anything gets worse.",
        "This answer comes from the scripted test model. Staying hydrated, resting and taking medicines exactly as prescribed are good general habits. If you have questions about a specific medicine, your pharmacist can check it against everything else you take.",
        "This answer comes from the scripted test model. It cannot examine you or know your history, so treat this as general information only. A nurse advice line or your clinician can help you decide whether you need to be seen, and emergency services are there for anything sudden or severe.",
    ]

    struct Script: Equatable {
        var text: String
        var delay: Duration
        var scalarsPerDelta: Int
        var failBefore = false
        var throttle = false
        var failAfter: Int?
    }

    func script(for request: ModelRequest) -> Script {
        let message = request.messages.last?.text ?? ""
        var script = Script(text: configuration.reply ?? Self.paragraphs[Self.pick(message, Self.paragraphs.count)], delay: configuration.deltaDelay, scalarsPerDelta: configuration.scalarsPerDelta)
        var repeatCount = 1
        for directive in Self.directives(in: message) {
            let parts = directive.split(separator: ":", maxSplits: 1).map(String.init)
            let name = parts[0]
            let value = parts.count > 1 ? parts[1] : ""
            switch name {
            case "say": script.text = value
            case "repeat": repeatCount = max(1, min(Int(value) ?? 1, 10_000))
            case "delay": script.delay = .milliseconds(max(0, Int(value) ?? 0))
            case "delta": script.scalarsPerDelta = max(1, Int(value) ?? 1)
            case "throttle": script.throttle = true
            case "fail":
                if value == "before" {
                    script.failBefore = true
                } else if value.hasPrefix("after:"), let n = Int(value.dropFirst(6)) {
                    script.failAfter = max(0, n)
                }
            case "context":
                let roles = request.messages.map { $0.role == .user ? "u" : "a" }.joined(separator: ",")
                script.text = "context: system \(request.system.count) chars; \(request.messages.count) messages; roles \(roles)."
            default: break
            }
        }
        if repeatCount > 1 {
            script.text = Array(repeating: script.text, count: repeatCount).joined(separator: " ")
        }
        return script
    }

    /// Streams the scripted answer to `request`.
    public func stream(_ request: ModelRequest) -> AsyncThrowingStream<ModelEvent, any Error> {
        let script = script(for: request)
        return AsyncThrowingStream { continuation in
            let task = Task {
                if script.throttle {
                    continuation.finish(throwing: ModelError(kind: .throttled, retryable: true, detail: "scripted throttling"))
                    return
                }
                if script.failBefore {
                    continuation.finish(throwing: ModelError(kind: .unavailable, retryable: true, detail: "scripted failure before the first delta"))
                    return
                }
                let scalars = Array(script.text.unicodeScalars)
                var index = 0
                var deltas = 0
                while index < scalars.count {
                    if script.delay > .zero {
                        do { try await Task.sleep(for: script.delay) } catch { break }
                    }
                    if Task.isCancelled { break }
                    if let failAfter = script.failAfter, deltas >= failAfter {
                        continuation.finish(throwing: ModelError(kind: .failed, retryable: true, detail: "scripted model stream error"))
                        return
                    }
                    let end = min(index + script.scalarsPerDelta, scalars.count)
                    var piece = String.UnicodeScalarView()
                    piece.append(contentsOf: scalars[index..<end])
                    continuation.yield(.delta(String(piece)))
                    index = end
                    deltas += 1
                }
                let input = request.messages.reduce(ContextBuilder.estimateTokens(request.system)) { $0 + ContextBuilder.estimateTokens($1.text) }
                continuation.yield(.usage(Usage(inputTokens: input, outputTokens: deltas)))
                continuation.yield(.stop(.endTurn))
                continuation.finish()
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    static func directives(in text: String) -> [String] {
        var result: [String] = []
        var rest = text[...]
        while let open = rest.range(of: "[["), let close = rest[open.upperBound...].range(of: "]]") {
            result.append(String(rest[open.upperBound..<close.lowerBound]))
            rest = rest[close.upperBound...]
        }
        return result
    }

    static func pick(_ text: String, _ count: Int) -> Int {
        var hash: UInt32 = 2_166_136_261
        for byte in text.utf8 { hash = (hash ^ UInt32(byte)) &* 16_777_619 }
        return Int(hash % UInt32(count))
    }
}
