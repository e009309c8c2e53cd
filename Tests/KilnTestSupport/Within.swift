import Foundation
import Synchronization

package struct TimedOut: Error, CustomStringConvertible {
    package let what: String
    package var description: String { "timed out: \(what)" }
}

/// Runs `body`, failing with `TimedOut` after `seconds` even if `body` never
/// returns (a hang in close() must fail the test, not stall the run).
package func within<T: Sendable>(
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
