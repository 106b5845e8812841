import Foundation

/// What the Bedrock stand-in does for one request, read from `[[…]]` directives in the last
/// user message (the same notation as the scripted model).
///
/// | directive | effect |
/// |---|---|
/// | `[[say:TEXT]]` | answer with TEXT |
/// | `[[repeat:N]]` | repeat the answer N times |
/// | `[[delta:N]]` | N characters per `contentBlockDelta` (default 8) |
/// | `[[delay:MS]]` | wait MS milliseconds before each delta |
/// | `[[throttle:N]]` | the first N attempts of this same request get HTTP 429 `ThrottlingException` |
/// | `[[stream-throttle:N]]` | the first N attempts get a `throttlingException` inside the stream, before any delta |
/// | `[[http:STATUS:CODE]]` | every attempt gets HTTP STATUS with `x-amzn-ErrorType: CODE` |
/// | `[[exception:TYPE]]` | every attempt gets the stream exception TYPE (e.g. `validationException`) before any delta |
/// | `[[fail-after:N]]` | every attempt gets `modelStreamErrorException` after N deltas |
/// | `[[stop:REASON]]` | the stop reason (default `end_turn`) |
///
/// The unstreamed `/converse` and `/invoke` answer the same text in one JSON body; a stream
/// throttle or exception is an HTTP error there, and `fail-after` a 500.
public struct StandInScript: Sendable, Equatable {
    public var text: String
    public var charactersPerDelta = 8
    public var delay: Duration = .zero
    public var throttleAttempts = 0
    public var streamThrottleAttempts = 0
    public var httpError: (status: Int, code: String)?
    public var exception: String?
    public var failAfterDeltas: Int?
    public var stopReason = "end_turn"

    public static func == (a: StandInScript, b: StandInScript) -> Bool {
        a.text == b.text && a.charactersPerDelta == b.charactersPerDelta && a.delay == b.delay
            && a.throttleAttempts == b.throttleAttempts && a.streamThrottleAttempts == b.streamThrottleAttempts
            && a.httpError?.status == b.httpError?.status && a.httpError?.code == b.httpError?.code
            && a.exception == b.exception && a.failAfterDeltas == b.failAfterDeltas && a.stopReason == b.stopReason
    }

    /// The answer when no `[[say:…]]` is given.
    public static let defaultText = "This answer comes from the Bedrock stand-in, a local test double of Amazon Bedrock. It streams a fixed reply so that the whole path from the model to the patient can be checked without a cloud account."

    /// The script for `message` (the last user message's text).
    public init(message: String, defaultText: String = StandInScript.defaultText) {
        text = defaultText
        var repeatCount = 1
        var rest = message[...]
        while let open = rest.range(of: "[["), let close = rest[open.upperBound...].range(of: "]]") {
            let directive = rest[open.upperBound..<close.lowerBound]
            rest = rest[close.upperBound...]
            let parts = directive.split(separator: ":", maxSplits: 1).map(String.init)
            guard let name = parts.first else { continue }
            let value = parts.count > 1 ? parts[1] : ""
            switch name {
            case "say": text = value
            case "repeat": repeatCount = max(1, min(Int(value) ?? 1, 10_000))
            case "delta": charactersPerDelta = max(1, Int(value) ?? 1)
            case "delay": delay = .milliseconds(max(0, min(Int(value) ?? 0, 60_000)))
            case "throttle": throttleAttempts = max(0, Int(value) ?? 1)
            case "stream-throttle": streamThrottleAttempts = max(0, Int(value) ?? 1)
            case "http":
                let pieces = value.split(separator: ":", maxSplits: 1).map(String.init)
                if let status = Int(pieces.first ?? ""), (400...599).contains(status) {
                    httpError = (status, pieces.count > 1 ? pieces[1] : "InternalServerException")
                }
            case "exception": exception = value.isEmpty ? "internalServerException" : value
            case "fail-after": failAfterDeltas = max(0, Int(value) ?? 0)
            case "stop": stopReason = value
            default: continue
            }
        }
        if repeatCount > 1 { text = Array(repeating: text, count: repeatCount).joined(separator: " ") }
    }

    /// The text cut into deltas of ``charactersPerDelta`` characters.
    public var deltas: [String] {
        var result: [String] = []
        var current = ""
        for character in text {
            current.append(character)
            if current.count >= charactersPerDelta {
                result.append(current)
                current = ""
            }
        }
        if !current.isEmpty { result.append(current) }
        return result
    }
}
