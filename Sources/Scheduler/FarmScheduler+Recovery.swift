import Foundation
import Manifest
import Protocol

extension FarmScheduler {
    /// Restart (docs/architecture.md §5): bumps the epoch, reloads unfinished builds
    /// into the core (`SchedulerCore.restore`), pins their trees, marks failed
    /// the builds whose manifests no longer load, and resumes the others.
    func recover() async throws {
        let loaded = try await records.loadUnfinished(registry: registry)
        var interrupted = 0
        act { interrupted = $0.restore(loaded) }
        for b in loaded.builds { treeLeases[b.id] = store.pin(b.ids) }
        for (id, reason) in loaded.failed {
            try await records.failBuild(id, reason: reason)
        }
        if !core.builds.isEmpty {
            logger.info(
                "recovered \(core.builds.count) unfinished build(s), \(interrupted) attempt(s) awaiting their agents",
                metadata: ["scheduler.epoch": "\(epoch)"])
        }
        act { $0.resume() }
    }

    static func list(_ text: String?, separator: Character = ",") -> [String] {
        (text ?? "").split(separator: separator).map(String.init)
    }
}
