import Manifest
import Synchronization

/// Trees of a store that someone in this process is using: a build waiting
/// for its trees, an executor running a manifest, an agent uploading a tree.
/// `TreeStore.prune` never removes a leased tree. Released by `release()` or
/// when the lease is dropped, whichever comes first.
package final class TreeLease: Sendable {
    private let state: TreeStoreState
    private let ids: Mutex<[String]?>

    init(_ ids: [String], state: TreeStoreState) {
        self.state = state
        self.ids = Mutex(ids)
        state.pin(ids)
    }

    /// Lets `prune` have the trees again (once; later calls do nothing).
    package func release() {
        guard let ids = ids.withLock({ $0.take() }) else { return }
        state.unpin(ids)
    }

    deinit { release() }
}

/// What every copy of one `TreeStore` value shares: leased IDs (counted,
/// several users may lease one tree), the sizes of objects already measured,
/// and whether a tree was stored since the last prune.
final class TreeStoreState: Sendable {
    struct State {
        var pins: [String: Int] = [:]
        var sizes: [String: UInt64] = [:]
        var storedSincePrune = false
    }

    let state = Mutex(State())

    func pin(_ ids: [String]) {
        state.withLock { s in for id in ids { s.pins[id, default: 0] += 1 } }
    }

    func unpin(_ ids: [String]) {
        state.withLock { s in
            for id in ids {
                guard let n = s.pins[id] else { continue }
                s.pins[id] = n > 1 ? n - 1 : nil
            }
        }
    }

    func stored() {
        state.withLock { $0.storedSincePrune = true }
    }
}

extension TreeStore {
    /// Leases `ids`: until the lease is released, `prune` leaves them in the
    /// store. Lease first, then look (`contains`): a tree found after its
    /// lease was taken stays until the lease ends. IDs not stored yet may be
    /// leased too (a tree that is being built).
    package func pin<S: Sequence>(_ ids: S) -> TreeLease where S.Element == String {
        TreeLease(Array(ids), state: shared)
    }

    /// Leases every pipeline and checkpoint of a manifest.
    package func pin(_ ids: ContentIDs) -> TreeLease {
        pin(Array(ids.pipelines.values) + ids.stages.values.flatMap { $0 })
    }

    /// Whether a tree was stored since the last `prune` (and clears the mark).
    package func takeStoredMark() -> Bool {
        shared.state.withLock { s in
            defer { s.storedSincePrune = false }
            return s.storedSincePrune
        }
    }
}
