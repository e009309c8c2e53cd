import Foundation
import GRDB

// What the operator's commands on the scheduler's host read and change
// (`kiln store list/forget`, `kiln agents release`, SchedulerAdmin). They
// write straight through the pool: another process (the daemon) may hold
// the file, and SQLite serialises the two.
extension SchedulerStore {
    /// Every record of a stored tree, oldest first, with the builds that used each tree.
    func treeRecords() async throws -> [SchedulerAdmin.StoredTree] {
        try await database.pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM trees ORDER BY stored_ms").map { r -> SchedulerAdmin.StoredTree in
                var t = SchedulerAdmin.StoredTree(pipelineID: r["pipeline_id"])
                t.agentID = r["agent_id"]
                t.agentKey = r["agent_key"]
                t.storedMS = r["stored_ms"]
                t.streamSHA256 = (r["stream_sha256"] as Data).map { String(format: "%02x", $0) }.joined()
                t.streamBytes = r["stream_bytes"]
                t.buildID = r["build_id"]
                t.usedBy = try String.fetchAll(
                    db, sql: "SELECT DISTINCT build_id FROM jobs WHERE pipeline_id = ? ORDER BY build_id",
                    arguments: [t.pipelineID])
                return t
            }
        }
    }

    /// Deletes the record of tree `pipelineID` (the tree has left the store).
    func forgetTreeRecord(_ pipelineID: String) async throws {
        try await database.pool.write { db in
            try db.execute(sql: "DELETE FROM trees WHERE pipeline_id = ?", arguments: [pipelineID])
        }
    }

    /// The manifests of the builds with a job whose content ID is `pipelineID`.
    func manifests(usingTree pipelineID: String) async throws -> [Data] {
        try await database.pool.read { db in
            try Data.fetchAll(
                db,
                sql: """
                    SELECT manifest FROM builds WHERE id IN (SELECT DISTINCT build_id FROM jobs WHERE pipeline_id = ?)
                    """, arguments: [pipelineID])
        }
    }

    /// Unbinds agent id `agentID` from its key; returns that key (nil: no such agent).
    func releaseAgent(_ agentID: String) async throws -> String? {
        try await database.pool.write { db -> String? in
            let key = try String.fetchOne(db, sql: "SELECT public_key FROM agents WHERE id = ?", arguments: [agentID])
            try db.execute(sql: "UPDATE agents SET public_key = '' WHERE id = ?", arguments: [agentID])
            return key
        }
    }

    /// Up to `limit` tree records after row `afterRowID`, in row order (the retention pass's slice).
    func treeRecordSlice(afterRowID: Int64, limit: Int) async throws -> [(rowID: Int64, pipelineID: String)] {
        try await database.read { db in
            try Row.fetchAll(
                db, sql: "SELECT rowid, pipeline_id FROM trees WHERE rowid > ? ORDER BY rowid LIMIT ?",
                arguments: [afterRowID, limit]
            ).map { ($0["rowid"], $0["pipeline_id"]) }
        }
    }

    /// Deletes these tree records; a record stored again since (a new row for the same tree) stays.
    func forgetTreeRecords(_ slice: [(rowID: Int64, pipelineID: String)]) async throws {
        try await database.commit { db in
            for r in slice {
                try db.cachedStatement(sql: "DELETE FROM trees WHERE rowid = ? AND pipeline_id = ?")
                    .execute(arguments: [r.rowID, r.pipelineID])
            }
        }
    }
}
