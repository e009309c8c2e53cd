import Synchronization

/// Wakes one waiting task; a wake with nobody waiting is kept for the next
/// wait (wakes do not accumulate). For a loop that re-checks its state after
/// every wake-up.
package final class WakeSignal: Sendable {
    private let state = Mutex<(signalled: Bool, waiter: CheckedContinuation<Void, Never>?)>((false, nil))

    package init() {}

    package func wake() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard let waiter = state.waiter.take() else {
                state.signalled = true
                return nil
            }
            return waiter
        }
        waiter?.resume()
    }

    /// Returns at once if a wake is pending, else at the next wake.
    package func wait() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let ready = state.withLock { state -> Bool in
                if state.signalled {
                    state.signalled = false
                    return true
                }
                state.waiter = continuation
                return false
            }
            if ready { continuation.resume() }
        }
    }
}
