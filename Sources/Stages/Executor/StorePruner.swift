import Foundation
import Logging
import Synchronization

/// Keeps a daemon's tree store under its cap (`--store-cap`) while the
/// daemon runs: prunes least-recently-used trees within a second after a
/// tree was stored, and every `interval` anyway; never a tree that is leased
/// (`TreeStore.pin`: a build waiting for it, a running job or assembly, an
/// upload or download). The measuring runs on a thread of its own and the
/// deleting in `rm`, so the daemon's cooperative threads never wait for it.
package final class StorePruner: Sendable {
    package let store: TreeStore
    let interval: Duration
    let logger: Logger
    private let task = Mutex<Task<Void, Never>?>(nil)
    /// When the store was last reported over its cap by its leased trees alone.
    private let overCapWarned = Mutex<ContinuousClock.Instant?>(nil)

    package init(store: TreeStore, interval: Duration = .seconds(60), logger: Logger) {
        self.store = store
        self.interval = interval
        self.logger = logger
    }

    /// Starts pruning (nothing to do for a store without a cap).
    package func start() {
        guard store.capBytes != nil else { return }
        let t = Task { await self.loop() }
        task.withLock { $0 = t }
    }

    package func stop() {
        task.withLock { $0.take() }?.cancel()
    }

    private func loop() async {
        let commands = CommandRunner(logPath: "/dev/null", logger: logger)
        var last: ContinuousClock.Instant?
        while !Task.isCancelled {
            if store.takeStoredMark() || last.map({ ContinuousClock.now - $0 >= interval }) ?? true {
                last = .now
                await pruneOnce(commands)
            }
            try? await Task.sleep(for: .seconds(1))
        }
    }

    func pruneOnce(_ commands: CommandRunner) async {
        let report: PruneReport
        do {
            report = try await store.prune(commands: commands)
        } catch {
            logger.warning("could not prune the tree store \(store.root): \(error)")
            return
        }
        let mb = { (b: UInt64) in String(format: "%.1f MB", Double(b) / 1e6) }
        let cap = report.capBytes ?? 0
        if !report.removed.isEmpty {
            let text = "pruned \(report.removed.count) least recently used tree(s), \(mb(report.freedBytes)), from the tree store; "
                + "\(mb(report.storedBytes)) of its \(mb(cap)) cap (--store-cap) in use"
            logger.info("\(text)", metadata: ["store.root": "\(store.root)"])
        }
        guard report.overCap else { return }
        let now = ContinuousClock.now
        let due = overCapWarned.withLock { last -> Bool in
            if let last, now - last < .seconds(600) { return false }
            last = now
            return true
        }
        if due {
            let text = "the tree store holds \(mb(report.storedBytes)), over its \(mb(cap)) cap (--store-cap): "
                + "\(mb(report.leasedBytes)) of it is in use by running builds and stays until they end"
            logger.warning("\(text)", metadata: ["store.root": "\(store.root)"])
        }
    }
}
