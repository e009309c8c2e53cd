import Foundation
import Stages
import Synchronization

/// Makes a received tree durable before the agent hears `Ack` (after which
/// it deletes its copy): `flush(path, done)` calls `done` once everything
/// written on the filesystem of `path` before the call is on disk. A seam so
/// that a test can see the order; `system` is `syncfs`, shared by every
/// download that asks while one is under way (group commit: a farm storing
/// thousands of small trees pays for a few syncfs calls, not one each).
package struct TreeSync: Sendable {
    package var flush: @Sendable (_ path: String, _ done: @escaping @Sendable (Result<Void, any Error>) -> Void) -> Void

    package init(flush: @escaping @Sendable (_ path: String, _ done: @escaping @Sendable (Result<Void, any Error>) -> Void) -> Void) {
        self.flush = flush
    }

    package static let system = TreeSync(flush: { GroupSync.shared.flush($0, done: $1) })
}

/// syncfs on a queue of its own; requests that arrive while one runs share the next.
final class GroupSync: Sendable {
    static let shared = GroupSync()
    private typealias Waiter = (path: String, done: @Sendable (Result<Void, any Error>) -> Void)
    private let state = Mutex<(waiting: [Waiter], running: Bool)>(([], false))
    private let queue = DispatchQueue(label: "kiln-syncfs")

    func flush(_ path: String, done: @escaping @Sendable (Result<Void, any Error>) -> Void) {
        let start = state.withLock { s -> Bool in
            s.waiting.append((path, done))
            defer { s.running = true }
            return !s.running
        }
        if start { queue.async { self.run() } }
    }

    /// Until nobody waits: takes everyone waiting, syncs each path among them
    /// once, answers them. (Every download names its store's root, so a batch
    /// is one syncfs; two paths on one filesystem would cost one more call,
    /// not a wrong answer.)
    private func run() {
        while true {
            let batch = state.withLock { s -> [Waiter] in
                defer { s.waiting.removeAll() }
                if s.waiting.isEmpty { s.running = false }
                return s.waiting
            }
            if batch.isEmpty { return }
            var outcomes: [String: Result<Void, any Error>] = [:]
            for waiter in batch {
                let outcome = outcomes[waiter.path] ?? Result { try FileSync.filesystem(waiter.path) }
                outcomes[waiter.path] = outcome
                waiter.done(outcome)
            }
        }
    }
}
