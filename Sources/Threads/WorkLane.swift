import Foundation

/// A thread of its own that runs closures one at a time, in the
/// order they were queued. Tree downloads share a few lanes (one per core):
/// each download's chunks are verified, and a small tree extracted, stored
/// and acknowledged, on its lane without handing anything between threads.
/// A thread per download (or a dispatch queue, a task and an extraction
/// thread each) made thread wake-ups the largest cost of a small job in the
/// dispatch benchmark (docs/benchmarks.md).
///
/// Work on a lane may block on the disk, never on another lane or a peer.
package final class WorkLane: @unchecked Sendable {  // guarded by `condition`
    private let condition = NSCondition()
    private var queued: [@Sendable () -> Void] = []
    private var sleeping = false

    private init(name: String) {
        let thread = Thread { [self] in serve() }
        thread.name = name
        thread.start()
    }

    /// Runs `body` on the lane after what is already queued.
    package func async(_ body: @escaping @Sendable () -> Void) {
        condition.lock()
        queued.append(body)
        let wake = sleeping
        condition.unlock()
        if wake { condition.signal() }  // a busy lane is not woken again
    }

    private func serve() {
        var batch: [@Sendable () -> Void] = []
        while true {
            condition.lock()
            while queued.isEmpty {
                sleeping = true
                condition.wait()
                sleeping = false
            }
            swap(&batch, &queued)
            condition.unlock()
            for body in batch { body() }
            batch.removeAll(keepingCapacity: true)
        }
    }

    /// The process's download lanes, made on first use and kept.
    private static let lanes: [WorkLane] = (0..<max(2, min(8, ProcessInfo.processInfo.activeProcessorCount))).map {
        WorkLane(name: "kiln-download-\($0)")
    }

    /// The lane for a download: consecutive attempts go to consecutive lanes.
    package static func forDownload(_ attemptID: UInt64) -> WorkLane {
        lanes[Int(attemptID % UInt64(lanes.count))]
    }
}
