import Foundation
import MedViewCore
import MedViewProtocol

/// Pumps one answer's events to a client until it ends, the client is gone, or the invocation
/// must stop (its deadline less a margin).
///
/// An answer this invocation runs (``owned``) is never abandoned: when the client is gone its
/// events are still consumed until the answer ends (it is stored whole); at the deadline it is
/// interrupted (stored failed with its partial text, ending with a retryable `shutting_down`
/// error the client can resume to read). An answer another invocation runs is simply left: the
/// client can resume it again.
struct Delivery: Sendable {
    enum Ending: Sendable, Equatable {
        /// The answer's terminal event was delivered.
        case finished
        /// The client went away (410) or delivery failed.
        case clientGone
        /// The invocation's time ran out (a followed answer was left running).
        case deadline
    }

    let chat: ChatService
    let stream: ResponseStream
    let owned: Bool
    /// When to stop: the invocation's deadline less the margin.
    let stopAt: Date
    /// How often an idle delivery checks the clock (and SSE writes a keep-alive comment).
    let keepAlive: Duration

    /// Sends every event after `after` through `send` (which returns `false` once the client is
    /// gone); `idle` is called whenever `keepAlive` passes without an event.
    func run(after: Int, send: (ServerEvent) async -> Bool, idle: () async -> Bool = { true }) async -> Ending {
        var last = after
        var clientGone = false
        var interrupted = false
        while true {
            let remaining = stopAt.timeIntervalSinceNow
            if remaining <= 0, !interrupted {
                guard owned else { return .deadline }
                chat.interrupt(streamId: stream.id)
                interrupted = true
            }
            let wait = interrupted ? keepAlive : min(keepAlive, .milliseconds(max(1, Int(remaining * 1000))))
            switch await stream.next(after: last, timeout: wait) {
            case .event(let event):
                last = event.seq ?? last
                if !clientGone, !(await send(event)) {
                    clientGone = true
                    guard owned else { return .clientGone }
                }
            case .timeout:
                if !clientGone, !(await idle()) {
                    clientGone = true
                    guard owned else { return .clientGone }
                }
            case .finished:
                return clientGone ? .clientGone : .finished
            }
        }
    }
}
