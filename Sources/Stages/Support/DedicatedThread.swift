import Foundation

/// Runs blocking work (libarchive, big file I/O, waiting on a condition) on a
/// new thread of its own and awaits it, so that no cooperative thread ever
/// blocks. The thread ends when `body` returns.
package enum DedicatedThread {
    package static func run<T: Sendable>(
        name: String, _ body: @escaping @Sendable () throws -> T
    ) async throws -> T {
        try await withCheckedThrowingContinuation { (done: CheckedContinuation<T, any Error>) in
            let thread = Thread { done.resume(with: Result { try body() }) }
            thread.name = name
            thread.start()
        }
    }
}
