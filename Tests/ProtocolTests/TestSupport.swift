import Foundation
import Protocol
import Synchronization

/// Collects an AsyncStream in the background so a test can wait for the
/// next element with a deadline (and the stream stays usable afterwards).
final class Inbox<Element: Sendable>: Sendable {
    private let state = Mutex<(items: [Element], finished: Bool)>(([], false))

    init(_ stream: AsyncStream<Element>) {
        Task { [self] in
            for await item in stream { state.withLock { $0.items.append(item) } }
            state.withLock { $0.finished = true }
        }
    }

    /// The next element, or nil if none came within `timeout` (or the stream ended).
    func next(within timeout: Duration = .seconds(5)) async -> Element? {
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

    /// Waits until the stream has finished.
    func waitFinished(within timeout: Duration = .seconds(5)) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if state.withLock({ $0.finished }) { return true }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return false
    }
}

struct TimedOut: Error, CustomStringConvertible {
    let what: String
    var description: String { "timed out: \(what)" }
}

/// Runs `body`, failing with `TimedOut` after `seconds` even if `body` never
/// returns (a hang in close() must fail the test, not stall the run).
func within<T: Sendable>(
    _ seconds: Double, _ what: String, _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    let once = Once<T>()
    return try await withCheckedThrowingContinuation { continuation in
        once.set(continuation)
        Task {
            do { once.finish(.success(try await body())) } catch { once.finish(.failure(error)) }
        }
        Task {
            try? await Task.sleep(for: .seconds(seconds))
            once.finish(.failure(TimedOut(what: what)))
        }
    }
}

final class Once<T: Sendable>: Sendable {
    private let slot = Mutex<CheckedContinuation<T, any Error>?>(nil)
    func set(_ continuation: CheckedContinuation<T, any Error>) { slot.withLock { $0 = continuation } }
    func finish(_ result: Result<T, any Error>) { slot.withLock { $0.take() }?.resume(with: result) }
}
