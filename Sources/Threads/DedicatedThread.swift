import Foundation

/// Runs blocking work (libarchive, big file I/O, waiting on a condition) on a
/// thread of its own and awaits it, so that no cooperative thread ever
/// blocks. The thread is the body's alone until it returns; a thread that
/// finished a body waits a few seconds for the next one instead of exiting
/// (the scheduler stores thousands of small trees an hour, and a new thread
/// each, with its stack mapped and unmapped, was a tenth of its CPU in the
/// dispatch benchmark). Never waits for a thread: with none idle, it starts one.
package enum DedicatedThread {
    package static func run<T: Sendable>(
        name: String, _ body: @escaping @Sendable () throws -> T
    ) async throws -> T {
        try await withCheckedThrowingContinuation { (done: CheckedContinuation<T, any Error>) in
            Pool.shared.start(name: name) {
                Thread.current.name = name
                done.resume(with: Result { try body() })
            }
        }
    }

    /// Idle threads, each waiting on its own condition for one piece of work.
    private final class Pool: @unchecked Sendable {
        static let shared = Pool()
        private static let idleSeconds = 5.0

        private final class Worker: @unchecked Sendable {  // guarded by its condition
            let condition = NSCondition()
            var work: (@Sendable () -> Void)?
        }

        private let lock = NSLock()
        private var idle: [Worker] = []

        func start(name: String, _ work: @escaping @Sendable () -> Void) {
            lock.lock()
            let worker = idle.popLast()
            lock.unlock()
            if let worker {
                worker.condition.lock()
                worker.work = work
                worker.condition.signal()
                worker.condition.unlock()
                return
            }
            let fresh = Worker()
            fresh.work = work
            let thread = Thread { [self] in self.serve(fresh) }
            thread.name = name
            thread.start()
        }

        private func serve(_ worker: Worker) {
            while true {
                worker.condition.lock()
                let work = worker.work
                worker.work = nil
                worker.condition.unlock()
                work?()
                lock.lock()
                idle.append(worker)
                lock.unlock()
                worker.condition.lock()
                let deadline = Date(timeIntervalSinceNow: Self.idleSeconds)
                while worker.work == nil, worker.condition.wait(until: deadline) {}
                let hasWork = worker.work != nil
                worker.condition.unlock()
                if hasWork { continue }
                // Timed out: leave, unless a caller took this worker meanwhile.
                lock.lock()
                if let i = idle.firstIndex(where: { $0 === worker }) {
                    idle.remove(at: i)
                    lock.unlock()
                    return
                }
                lock.unlock()
                // Taken just now: its work is on the way.
                worker.condition.lock()
                while worker.work == nil { worker.condition.wait() }
                worker.condition.unlock()
            }
        }
    }
}
