import Synchronization

/// Sends a prepared model call (``PreparedModelCall``) once both its turn is stored and the call
/// is ready, whichever comes last.
///
/// The store says the turn is stored from its writer's thread, the moment the write is committed
/// (``stored()``); the engine hands over the call once the request is built (``ready(_:)``), while
/// the write runs. So the request leaves as soon as both are true, without waiting for the
/// sending task to resume. A turn that was not stored (a duplicate, a failed write) discards the
/// call (``discard()``): its request is never sent.
final class ModelCallGate: Sendable {
    private enum State {
        case waiting(stored: Bool, call: (any PreparedModelCall)?)
        case sent(at: ContinuousClock.Instant)
        case discarded
    }

    private let state = Mutex(State.waiting(stored: false, call: nil))

    /// The turn is stored: sends the call if it is ready (else ``ready(_:)`` will).
    func stored() {
        let call = state.withLock { state -> (any PreparedModelCall)? in
            guard case .waiting(_, let call) = state else { return nil }
            guard let call else {
                state = .waiting(stored: true, call: nil)
                return nil
            }
            state = .sent(at: .now)
            return call
        }
        call?.send()
    }

    /// The call is ready: sends it if the turn is stored (else ``stored()`` will); discards it if
    /// the gate was discarded already.
    func ready(_ call: any PreparedModelCall) {
        let send = state.withLock { state -> Bool? in
            switch state {
            case .waiting(true, _):
                state = .sent(at: .now)
                return true
            case .waiting(false, _):
                state = .waiting(stored: false, call: call)
                return false
            case .sent, .discarded:
                return nil
            }
        }
        switch send {
        case true?: call.send()
        case false?: break
        case nil: call.discard()
        }
    }

    /// The turn was not stored: discards the call waiting here, if any, and any handed over later.
    func discard() {
        let call = state.withLock { state -> (any PreparedModelCall)? in
            guard case .waiting(_, let call) = state else { return nil }
            state = .discarded
            return call
        }
        call?.discard()
    }

    /// When the call was sent through this gate (`nil` if it was not).
    var sentAt: ContinuousClock.Instant? {
        state.withLock { state in
            if case .sent(let at) = state { return at }
            return nil
        }
    }
}
