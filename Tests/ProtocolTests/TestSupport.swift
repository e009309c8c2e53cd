import Foundation
import KilnTestSupport
import Protocol
import Synchronization

/// Collects an AsyncStream in the background so a test can wait for the
/// next element with a deadline (and the stream stays usable afterwards).
final class Inbox<Element: Sendable>: Sendable {
    private let state = Mutex<(items: [Element], finished: Bool)>(([], false))

    init<S: AsyncSequence & Sendable>(_ stream: S) where S.Element == Element, S.Failure == Never {
        Task { [self] in
            for await item in stream { state.withLock { $0.items.append(item) } }
            state.withLock { $0.finished = true }
        }
    }

    /// The next element, or nil if none came within `timeout` (or the stream ended).
    func next(within timeout: Duration = .seconds(30)) async -> Element? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let (item, finished) = state.withLock { state -> (Element?, Bool) in
                state.items.isEmpty ? (nil, state.finished) : (state.items.removeFirst(), false)
            }
            if let item { return item }
            if finished { return nil }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return nil
    }

    var finished: Bool { state.withLock { $0.finished && $0.items.isEmpty } }

    /// Elements received and not yet taken by `next`.
    var count: Int { state.withLock { $0.items.count } }
    var snapshot: [Element] { state.withLock { $0.items } }

    /// Waits until the stream has finished.
    func waitFinished(within timeout: Duration = .seconds(5)) async -> Bool {
        await waitFor(timeout, interval: .milliseconds(5)) { state.withLock { $0.finished } }
    }
}
