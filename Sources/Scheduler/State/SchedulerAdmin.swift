import Foundation
import Logging
import Manifest
import Stages

#if canImport(Glibc)
import Glibc
#endif

/// What an operator does to a scheduler's state on the scheduler's host
/// (`kiln store list/forget`, `kiln agents release`): it opens the state
/// directory's SQLite file and tree store directly, so it needs the rights
/// of the user the scheduler runs as, and no key. It is safe while the
/// scheduler runs: SQLite serialises the writes, a tree leaves the store by
/// one rename, and the scheduler checks the store again before it assembles
/// (a forgotten tree is built again) and reads an agent's binding again
/// before it refuses a Hello.
package struct SchedulerAdmin: Sendable {
    package let stateDirectory: String
    package let store: TreeStore
    let records: SchedulerStore

    /// One stored tree and who stored it.
    package struct StoredTree: Sendable, Equatable {
        package var pipelineID: String
        /// Empty when the store holds the tree but no record says who stored
        /// it (stored by the scheduler itself, or before records were kept).
        package var agentID = ""
        package var agentKey = ""
        package var storedMS: Int64 = 0
        package var streamSHA256 = ""
        package var streamBytes: Int64 = 0
        package var buildID = ""
        /// Builds with a job that has this tree's content ID (they used it, or will).
        package var usedBy: [String] = []
        /// For an object the scheduler made from a forgotten tree (an
        /// assembly's output or checkpoint): that tree's ID.
        package var derivedFrom = ""
    }

    package init(stateDirectory: String, store: TreeStore) throws(AdminError) {
        let path = stateDirectory + "/scheduler.sqlite"
        guard FileManager.default.fileExists(atPath: path) else {
            throw .noState("--state \(stateDirectory): no scheduler.sqlite there; name the scheduler's state directory")
        }
        self.stateDirectory = stateDirectory
        self.store = store
        do {
            records = SchedulerStore(database: try SchedulerDatabase(path: path))
        } catch {
            throw .database("\(path): \(error)")
        }
    }

    /// Trees in the store with their provenance, oldest first; with
    /// `agentKey`, only those that key's agents stored.
    package func trees(agentKey: String? = nil) async throws -> [StoredTree] {
        let rows = try await records.treeRecords()
        let recorded = Dictionary(rows.map { ($0.pipelineID, $0) }, uniquingKeysWith: { a, _ in a })
        let present = ((try? FileManager.default.contentsOfDirectory(atPath: store.root + "/objects")) ?? [])
            .filter { Self.isContentID($0) && store.contains($0) }.sorted()
        var out = rows.filter { store.contains($0.pipelineID) }
        if agentKey == nil {
            out += present.filter { recorded[$0] == nil }.map { StoredTree(pipelineID: $0) }
        }
        return agentKey.map { key in out.filter { $0.agentKey == key } } ?? out
    }

    /// Removes the trees from the store and their records; returns what was
    /// removed (with the builds that used each tree).
    package func forget(_ ids: [String]) async throws -> [StoredTree] {
        for id in ids where !Self.isContentID(id) {
            throw AdminError.badInput("\(id): not a tree ID (64 hex digits); `kiln store list` lists the stored trees")
        }
        let all = try await trees()
        var out: [StoredTree] = []
        var derived: [StoredTree] = []
        for id in ids {
            let record = all.first { $0.pipelineID == id }
            guard store.contains(id) || record != nil else {
                throw AdminError.badInput("\(id): no such tree in \(store.root); `kiln store list` lists the stored trees")
            }
            derived += try await madeFrom(id, agentTrees: Set(all.filter { !$0.agentID.isEmpty }.map(\.pipelineID)))
        }
        var seen = Set(ids)
        for d in derived where seen.insert(d.pipelineID).inserted {
            try await remove(d.pipelineID)
            out.append(d)
        }
        for id in ids {
            let record = all.first { $0.pipelineID == id }
            try await remove(id)
            out.append(record ?? StoredTree(pipelineID: id))
        }
        return out
    }

    /// Takes `id` out of the store in one rename (nothing can find it
    /// half-removed), deletes it, and deletes its record.
    func remove(_ id: String) async throws {
        let doomed = store.temporaryPath("forgotten")
        if rename("\(store.root)/objects/\(id)", doomed) != 0 && errno != ENOENT {
            throw AdminError.store("cannot move \(store.root)/objects/\(id) out of the store: \(String(cString: strerror(errno)))")
        }
        if FileManager.default.fileExists(atPath: doomed) {
            let commands = CommandRunner(logPath: "/dev/null", logger: .init(label: "kiln.admin"))
            try await store.remove(doomed, commands: commands)
        }
        try await records.forgetTreeRecord(id)
    }

    /// Objects in the store that the scheduler made from tree `id`: every
    /// pipeline and checkpoint of the builds that used the tree, except
    /// trees agents streamed (an agent builds a tree's dependencies itself,
    /// never from the scheduler's store).
    func madeFrom(_ id: String, agentTrees: Set<String>) async throws -> [StoredTree] {
        let manifests = try await records.manifests(usingTree: id)
        var found: Set<String> = []
        for json in manifests {
            guard let m = try? BuildManifest.decode(json, file: "manifest"), let ids = try? ContentIDs(m) else { continue }
            for other in Array(ids.pipelines.values) + ids.stages.values.flatMap({ $0 })
            where other != id && !agentTrees.contains(other) && store.contains(other) {
                found.insert(other)
            }
        }
        return found.sorted().map {
            var t = StoredTree(pipelineID: $0)
            t.derivedFrom = id
            return t
        }
    }

    /// Forgets every tree stored by agents with `key`.
    package func forget(agentKey key: String) async throws -> [StoredTree] {
        try await forget(try await trees(agentKey: key).map(\.pipelineID))
    }

    /// Frees agent id `id` from the key it is bound to: the next Hello with
    /// it, from any allow-listed key, binds it anew. Returns the old key.
    package func releaseAgent(_ id: String) async throws -> String {
        let key = try await records.releaseAgent(id)
        guard let key else {
            throw AdminError.badInput("agent \(id): the scheduler knows no agent by that id; `kiln agents` lists them")
        }
        return key
    }

    static func isContentID(_ s: String) -> Bool {
        s.utf8.count == 64 && s.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
    }
}

/// Why an operator's command on the scheduler's state failed.
package enum AdminError: Error, CustomStringConvertible {
    /// An argument names nothing that exists or is malformed; the message says which and the fix.
    case badInput(String)
    /// The state directory has no scheduler database.
    case noState(String)
    /// The database could not be opened or written.
    case database(String)
    /// The tree store could not be changed.
    case store(String)

    package var description: String {
        switch self {
        case .badInput(let m), .noState(let m), .database(let m), .store(let m): m
        }
    }

    /// The user's input (exit code 2) rather than a failure.
    package var isBadInput: Bool {
        switch self {
        case .badInput, .noState: true
        case .database, .store: false
        }
    }
}
