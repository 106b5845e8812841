import Foundation
import Dispatch
import Synchronization

/// A second opinion on a patient's message from a language model, run in parallel with the
/// answer under a strict time budget; the deterministic ``EmergencyDetector`` stays first,
/// always on, and is never overruled.
///
/// - The engine calls ``triage(_:deterministic:)`` when the turn starts, alongside the answer.
/// - If the detector already alerted, the model is not asked (``Outcome/skipped``): the alert
///   stands and the model cannot withdraw it.
/// - Otherwise the model gets ``SafetyPrompt/triageInstructions`` and the message, and must
///   answer one category word within ``budget`` (1.5 s by default). A known emergency category
///   gives ``Outcome/alert(_:)`` with the product's own guidance for that category (never the
///   model's words), which the engine shows as a `safety.alert`.
/// - When the budget runs out, the model fails, or its answer is not one word from the list,
///   nothing extra is shown; the outcome (``Outcome/timedOut``, ``Outcome/failed``,
///   ``Outcome/unparsable``) is counted in ``Counters`` and the answer goes on unchanged.
public struct ModelTriage: Sendable {
    /// Asks a model: `(systemPrompt, patientMessage) → reply text`. A cloud `ChatModel` with a
    /// low token limit (a few tokens) and temperature 0 is the intended implementation.
    public typealias Classifier = @Sendable (_ system: String, _ message: String) async throws -> String

    /// What one triage check came to.
    public enum Outcome: Sendable, Equatable {
        /// The deterministic detector had already alerted; the model was not asked.
        case skipped
        /// The model answered `none`.
        case clear
        /// The model named an emergency the detector missed: show this alert.
        case alert(EmergencyAssessment)
        /// The budget ran out first: nothing is shown.
        case timedOut
        /// The model call threw: nothing is shown.
        case failed
        /// The reply was not one of ``SafetyPrompt/triageCategories``: nothing is shown.
        case unparsable

        /// A short name for logs and metrics (`safety.triage.outcome`).
        public var name: String {
            switch self {
            case .skipped: "skipped"
            case .clear: "clear"
            case .alert: "alert"
            case .timedOut: "timed_out"
            case .failed: "failed"
            case .unparsable: "unparsable"
            }
        }
    }

    /// Counts of triage outcomes, by ``Outcome/name``; safe to share between tasks.
    public final class Counters: Sendable {
        private let counts = Mutex<[String: Int]>([:])
        private let onRecord: @Sendable (Outcome) -> Void

        /// Empty counters; `onRecord` also sees every outcome (the server's metrics).
        public init(onRecord: @escaping @Sendable (Outcome) -> Void = { _ in }) {
            self.onRecord = onRecord
        }

        /// Adds one to the outcome's count.
        public func record(_ outcome: Outcome) {
            counts.withLock { $0[outcome.name, default: 0] += 1 }
            onRecord(outcome)
        }

        /// How many checks ended with the outcome named (`timed_out`, `alert`, …).
        public func count(_ name: String) -> Int {
            counts.withLock { $0[name] ?? 0 }
        }
    }

    /// The longest the check may take before it is given up (1.5 s by default).
    public var budget: Duration
    /// Outcome counts (the engine exports them as a metric).
    public let counters: Counters
    private let classify: Classifier
    private let detector: EmergencyDetector

    /// Arms `action` to run once `after` has passed and returns what disarms it (it is called
    /// when the check ends first). The action must be short; it must run even when Swift's
    /// concurrency pool is busy.
    public typealias Deadline = @Sendable (_ after: Duration, _ action: @escaping @Sendable () -> Void) -> (@Sendable () -> Void)

    /// A Dispatch timer: fires on time even when the Swift concurrency pool is busy (it cannot be
    /// disarmed, so it fires, and does nothing, after a check that ended first).
    public static let dispatchDeadline: Deadline = { after, action in
        let nanoseconds = UInt64(max(0, after.components.seconds)) * 1_000_000_000 + UInt64(max(0, after.components.attoseconds / 1_000_000_000))
        DispatchQueue.global().asyncAfter(deadline: .now() + .nanoseconds(Int(min(nanoseconds, UInt64(Int.max)))), execute: action)
        return {}
    }

    private let deadline: Deadline

    /// A triage check asking `classify`, giving up after `budget`, kept by `deadline` (a Dispatch
    /// timer unless the service gives its own shared timer).
    public init(budget: Duration = .milliseconds(1500), counters: Counters = Counters(), detector: EmergencyDetector = .shared, deadline: @escaping Deadline = ModelTriage.dispatchDeadline, classify: @escaping Classifier) {
        self.budget = budget
        self.counters = counters
        self.classify = classify
        self.detector = detector
        self.deadline = deadline
    }

    /// Runs the check for one patient message; never takes longer than ``budget`` (plus
    /// scheduling), whatever the classifier does, and never throws.
    public func triage(_ message: String, deterministic: EmergencyAssessment?) async -> Outcome {
        let outcome: Outcome
        if deterministic != nil {
            outcome = .skipped
        } else {
            outcome = await ask(message)
        }
        counters.record(outcome)
        return outcome
    }

    private func ask(_ message: String) async -> Outcome {
        enum Raw: Sendable { case reply(String), failed, timedOut }
        let once = Once<Raw>()
        let classify = self.classify
        let raw: Raw = await withCheckedContinuation { (continuation: CheckedContinuation<Raw, Never>) in
            once.set(continuation)
            // The classifier's task disarms the timer, then hands its own result on (whichever of
            // it and the timer is first wins): a caller that has the result never finds the timer
            // still armed. The budget is kept by a timer, not a task: it fires on time even when
            // the Swift concurrency pool is busy.
            let disarm = Mutex<(stop: (@Sendable () -> Void)?, answered: Bool)>((nil, false))
            let work = Task {
                let raw: Raw
                do {
                    raw = .reply(try await classify(SafetyPrompt.triageInstructions, message))
                } catch {
                    raw = .failed
                }
                disarm.withLock { state -> (@Sendable () -> Void)? in
                    state.answered = true
                    return state.stop
                }?()
                once.resume(raw)
            }
            let stop = deadline(budget) {
                once.resume(.timedOut)
                work.cancel()
            }
            // Answered before the timer was known: disarm it now (the task could not).
            let answered = disarm.withLock { state -> Bool in
                state.stop = stop
                return state.answered
            }
            if answered { stop() }
        }
        switch raw {
        case .timedOut: return .timedOut
        case .failed: return .failed
        case .reply(let text):
            guard let category = Self.category(in: text) else { return .unparsable }
            if category == "none" { return .clear }
            guard let assessment = detector.assessment(category: category, bystander: nil) else { return .unparsable }
            return .alert(assessment)
        }
    }

    /// The category word of a reply: the reply lowercased and trimmed of spaces and punctuation at
    /// its ends must be exactly one of ``SafetyPrompt/triageCategories``. Anything else inside it
    /// (a digit, a space, a second word: "3. diabetic", "not diabetic") makes it unparsable, so a
    /// list number or a negation is never read as a category.
    static func category(in reply: String) -> String? {
        // Trimmed from both ends without Foundation (whose trimming copies the whole reply through
        // NSString on Linux): only the trimmed scalars are visited, so a model that rambles costs
        // almost nothing here.
        let scalars = reply.unicodeScalars
        guard let first = scalars.firstIndex(where: { !isEdge($0) }), let last = scalars.lastIndex(where: { !isEdge($0) }) else { return nil }
        let core = reply.unicodeScalars[first...last]
        // Lower-casing never turns one scalar into fewer: a longer text cannot be a category.
        guard core.count <= Self.longestCategory else { return nil }
        let trimmed = String(core).lowercased()
        guard trimmed.allSatisfy({ ($0.isLetter && $0.isASCII) || $0 == "_" }) else { return nil }
        return SafetyPrompt.triageCategories.contains(trimmed) ? trimmed : nil
    }

    private static let longestCategory = SafetyPrompt.triageCategories.map(\.unicodeScalars.count).max() ?? 0

    /// What is trimmed from a reply's ends: white space and line breaks (Unicode `Z*`, U+0009 to
    /// U+000D, U+0085), punctuation (`P*`) and symbols (`S*`), as Foundation's
    /// `whitespacesAndNewlines`, `punctuationCharacters` and `symbols` sets define them, by the
    /// standard library's current Unicode data (Foundation's tables on Linux miss newer symbols,
    /// most emoji among them).
    static func isEdge(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x09...0x0D, 0x85: return true
        case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: return false
        default: break
        }
        switch scalar.properties.generalCategory {
        case .spaceSeparator, .lineSeparator, .paragraphSeparator,
             .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
             .initialPunctuation, .finalPunctuation, .otherPunctuation,
             .mathSymbol, .currencySymbol, .modifierSymbol, .otherSymbol:
            return true
        default:
            return false
        }
    }
}

/// Resumes a continuation once, with whichever value comes first.
private final class Once<Value: Sendable>: Sendable {
    private struct State { var continuation: CheckedContinuation<Value, Never>?; var pending: Value?; var done = false }
    private let state = Mutex(State())

    func set(_ continuation: CheckedContinuation<Value, Never>) {
        let value: Value? = state.withLock { s in
            if let p = s.pending, !s.done { s.done = true; return p }
            s.continuation = continuation
            return nil
        }
        if let value { continuation.resume(returning: value) }
    }

    func resume(_ value: Value) {
        let c: CheckedContinuation<Value, Never>? = state.withLock { s in
            guard !s.done else { return nil }
            guard let c = s.continuation else {
                if s.pending == nil { s.pending = value }
                return nil
            }
            s.done = true
            s.continuation = nil
            return c
        }
        c?.resume(returning: value)
    }
}
