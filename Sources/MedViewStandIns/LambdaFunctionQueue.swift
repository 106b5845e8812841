import Foundation
import Synchronization

/// One function's invocations and the execution environments polling for them.
///
/// Invariants: each invocation goes to exactly one poller; invocations wait in order while no
/// poller is idle; a poller waits while nothing is queued. Finished request ids are remembered
/// (the last ``rememberedRequests``) so that a late post is refused as a state error rather than as
/// an unknown id.
final class LambdaFunctionQueue: Sendable {
    /// The function's name.
    let name: String
    /// Its ARN (`Lambda-Runtime-Invoked-Function-Arn`).
    let arn: String
    /// Its timeout.
    let timeout: Duration
    /// How many invocations the queue keeps for lookups by request id.
    static let rememberedRequests = 1024

    private struct Poller {
        var id: Int
        var continuation: CheckedContinuation<LambdaInvocation?, Never>
    }

    private struct State {
        var queued: [LambdaInvocation] = []
        var pollers: [Poller] = []
        var nextPollerID = 0
        var known: [String: LambdaInvocation] = [:]
        var knownOrder: [String] = []
        var initErrors: [LambdaFunctionError] = []
        var invocations = 0
        var stopped = false
    }

    private let state = Mutex(State())

    init(name: String, arn: String, timeout: Duration) {
        self.name = name
        self.arn = arn
        self.timeout = timeout
    }

    /// Queues an invocation of `payload`, handing it to an idle poller if there is one.
    func invoke(_ payload: [UInt8]) -> LambdaInvocation {
        let invocation = LambdaInvocation(payload: payload, timeout: timeout)
        let (poller, stopped) = state.withLock { state -> (Poller?, Bool) in
            guard !state.stopped else { return (nil, true) }
            state.invocations += 1
            state.known[invocation.requestID] = invocation
            state.knownOrder.append(invocation.requestID)
            if state.knownOrder.count > Self.rememberedRequests {
                state.known[state.knownOrder.removeFirst()] = nil
            }
            if state.pollers.isEmpty {
                state.queued.append(invocation)
                return (nil, false)
            }
            return (state.pollers.removeFirst(), false)
        }
        if stopped { invocation.fail(.shutDown) }
        poller?.continuation.resume(returning: invocation)
        return invocation
    }

    /// Waits for the next invocation (`GET /runtime/invocation/next`). nil when the queue
    /// stopped or the waiting task was cancelled.
    func next() async -> LambdaInvocation? {
        let id = state.withLock { state -> Int in
            state.nextPollerID += 1
            return state.nextPollerID
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<LambdaInvocation?, Never>) in
                let immediate = state.withLock { state -> LambdaInvocation?? in
                    if state.stopped || Task.isCancelled { return .some(nil) }
                    if !state.queued.isEmpty { return .some(state.queued.removeFirst()) }
                    state.pollers.append(Poller(id: id, continuation: continuation))
                    return .none
                }
                if case .some(let invocation) = immediate { continuation.resume(returning: invocation) }
            }
        } onCancel: {
            let poller = state.withLock { state -> Poller? in
                guard let index = state.pollers.firstIndex(where: { $0.id == id }) else { return nil }
                return state.pollers.remove(at: index)
            }
            poller?.continuation.resume(returning: nil)
        }
    }

    /// Puts an invocation whose `next` answer could not be delivered back at the queue's head.
    func requeue(_ invocation: LambdaInvocation) {
        invocation.undispatch()
        let poller = state.withLock { state -> Poller? in
            if state.pollers.isEmpty {
                state.queued.insert(invocation, at: 0)
                return nil
            }
            return state.pollers.removeFirst()
        }
        poller?.continuation.resume(returning: invocation)
    }

    /// The invocation with this request id, if the queue knows it.
    func invocation(_ requestID: String) -> LambdaInvocation? {
        state.withLock { $0.known[requestID] }
    }

    /// An execution environment failed to initialise (`/runtime/init/error`): the invocations
    /// waiting for an environment fail with its error.
    func initFailed(_ error: LambdaFunctionError) {
        let queued = state.withLock { state -> [LambdaInvocation] in
            state.initErrors.append(error)
            defer { state.queued.removeAll() }
            return state.queued
        }
        for invocation in queued { invocation.fail(error) }
    }

    /// The init errors reported so far.
    var initErrors: [LambdaFunctionError] { state.withLock { $0.initErrors } }

    /// How many environments are waiting in `next`.
    var idlePollers: Int { state.withLock { $0.pollers.count } }

    /// How many remembered invocations were dispatched or queued and have not finished.
    var unfinishedCount: Int { state.withLock { Array($0.known.values) }.count { !$0.isFinished } }

    /// How many invocations the function received.
    var invocationCount: Int { state.withLock { $0.invocations } }

    /// Stops: waiting pollers get nil; queued invocations and those still running in an
    /// execution environment fail with `Runtime.ShutDown` (whoever waits on them, a `$connect`
    /// handshake or a function URL response, must not wait for the function's timeout);
    /// later invocations fail at once.
    func stop() {
        let (pollers, unfinished) = state.withLock { state -> ([Poller], [LambdaInvocation]) in
            state.stopped = true
            defer { state.pollers.removeAll(); state.queued.removeAll() }
            return (state.pollers, state.queued + state.known.values.filter { !$0.isFinished })
        }
        for poller in pollers { poller.continuation.resume(returning: nil) }
        for invocation in unfinished { invocation.fail(.shutDown) }
    }
}
