import Foundation
import GRDB
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The scheduler's durable state: one SQLite file in WAL mode with
/// `synchronous=FULL`, opened once for the daemon's life. Every state change
/// goes through `commit`, which applies changes in the order they were
/// submitted and groups those that arrive together into one transaction (one
/// fsync for a burst of assignments). A caller awaits its change before it
/// acknowledges anything to a peer: nothing is acknowledged before it is
/// committed.
///
/// The first write that fails (a full disk, an I/O error) makes the database
/// read-only for the rest of the process's life: every later change fails at
/// once with `ReadOnlyDatabase`, so what is on disk is always an unbroken
/// prefix of the changes — never a later change without an earlier one — and
/// no caller is told that something is committed when it is not. A restart
/// (once the cause is fixed) resumes from what was committed.
package final class SchedulerDatabase: Sendable {
    package let pool: DatabasePool
    private let queue = Mutex<(pending: [Pending], draining: Bool)>(([], false))
    private let failure = Mutex<ReadOnlyDatabase?>(nil)
    /// Told once, when the database turns read-only.
    private let onFailure = Mutex<(@Sendable (ReadOnlyDatabase) -> Void)?>(nil)

    private typealias Pending = (change: @Sendable (Database) throws -> Void, done: CheckedContinuation<Void, Error>?)

    package init(path: String) throws {
        var config = Configuration()
        config.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
            // Room for the working set of a busy farm (the open builds' jobs
            // and attempts, the indexes that new rows land in at random):
            // 16 MiB rather than SQLite's 2 MB, so that a commit rewrites
            // pages it holds instead of reading them back first.
            try db.execute(sql: "PRAGMA cache_size = -16384")
            // A new file keeps its free pages in a list that `compact` can
            // give back to the file system in small steps; set before GRDB
            // turns on WAL, which fixes the file's format. (An older file is
            // converted by `compact`'s first VACUUM.)
            if !db.configuration.readonly { try db.execute(sql: "PRAGMA auto_vacuum = INCREMENTAL") }
        }
        config.busyMode = .timeout(10)
        pool = try DatabasePool(path: path, configuration: config)
        try Self.migrator.migrate(pool)
    }

    /// Why the database takes no more changes (nil: it does).
    package var readOnly: ReadOnlyDatabase? { failure.withLock { $0 } }

    /// Throws `ReadOnlyDatabase` when a write has failed before.
    package func checkWritable() throws(ReadOnlyDatabase) {
        if let f = readOnly { throw f }
    }

    /// Sets what to call (once) when a write fails.
    package func whenReadOnly(_ body: @escaping @Sendable (ReadOnlyDatabase) -> Void) {
        onFailure.withLock { $0 = body }
    }

    /// Applies `change` in submission order; returns once it is durable.
    package func commit(_ change: @escaping @Sendable (Database) throws -> Void) async throws {
        try await withCheckedThrowingContinuation { (done: CheckedContinuation<Void, Error>) in
            enqueue(change, done)
        }
    }

    /// Applies `change` in submission order without waiting for it (for
    /// records nobody is told about, such as log lines and heartbeats).
    package func record(_ change: @escaping @Sendable (Database) throws -> Void) {
        enqueue(change, nil)
    }

    private func enqueue(_ change: @escaping @Sendable (Database) throws -> Void, _ done: CheckedContinuation<Void, Error>?) {
        let start = queue.withLock { q -> Bool in
            q.pending.append((change, done))
            if q.draining { return false }
            q.draining = true
            return true
        }
        if start { Task.detached { await self.drain() } }
    }

    private func drain() async {
        while true {
            // Records nobody waits for are grouped for a few milliseconds: one
            // fsync for many events and job updates. A waiter ends the wait.
            for _ in 0..<4 where !queue.withLock({ q in q.pending.contains { $0.done != nil } }) {
                try? await Task.sleep(for: .milliseconds(1))
            }
            let batch = queue.withLock { q -> [Pending] in
                let b = q.pending
                q.pending.removeAll()
                if b.isEmpty { q.draining = false }
                return b
            }
            if batch.isEmpty { return }
            let result: Result<Void, Error>
            if let f = readOnly {
                result = .failure(f)
            } else {
                do {
                    try await pool.write { db in
                        for item in batch { try item.change(db) }
                    }
                    result = .success(())
                } catch {
                    let f = ReadOnlyDatabase(cause: "\(error)")
                    failure.withLock { $0 = $0 ?? f }
                    onFailure.withLock { $0.take() }?(f)
                    result = .failure(f)
                }
            }
            for item in batch { item.done?.resume(with: result) }
        }
    }

    /// Reads a consistent snapshot.
    package func read<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try await pool.read(body)
    }

    static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        // `state` and `kind` columns hold the stored codes of BuildState,
        // JobState and EventKind (SchedulerStates.swift), which never change.
        m.registerMigration("v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
                    CREATE TABLE builds (
                        id TEXT PRIMARY KEY, label TEXT NOT NULL, arch TEXT NOT NULL, manifest BLOB NOT NULL,
                        exports TEXT NOT NULL, state INTEGER NOT NULL, created_ms INTEGER NOT NULL,
                        finished_ms INTEGER NOT NULL DEFAULT 0, failure TEXT NOT NULL DEFAULT '',
                        client_key TEXT NOT NULL DEFAULT '');
                    CREATE INDEX builds_created ON builds(created_ms);
                    CREATE TABLE jobs (
                        id TEXT PRIMARY KEY, build_id TEXT NOT NULL REFERENCES builds(id), ordinal INTEGER NOT NULL,
                        pipeline_name TEXT NOT NULL, pipeline_id TEXT NOT NULL, on_agent INTEGER NOT NULL,
                        state INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, attempt_id INTEGER NOT NULL DEFAULT 0,
                        agent_id TEXT NOT NULL DEFAULT '', stage_index INTEGER NOT NULL DEFAULT 0,
                        stage_count INTEGER NOT NULL DEFAULT 0, stage_type TEXT NOT NULL DEFAULT '',
                        failure TEXT NOT NULL DEFAULT '');
                    CREATE INDEX jobs_build ON jobs(build_id);
                    CREATE TABLE attempts (
                        id INTEGER PRIMARY KEY, job_id TEXT NOT NULL, agent_id TEXT NOT NULL, state INTEGER NOT NULL,
                        started_ms INTEGER NOT NULL, finished_ms INTEGER NOT NULL DEFAULT 0,
                        reason TEXT NOT NULL DEFAULT '', infrastructure INTEGER NOT NULL DEFAULT 0);
                    CREATE INDEX attempts_job ON attempts(job_id);
                    CREATE TABLE agents (
                        id TEXT PRIMARY KEY, public_key TEXT NOT NULL, arches TEXT NOT NULL, emulated TEXT NOT NULL,
                        slots INTEGER NOT NULL, free_disk INTEGER NOT NULL, version TEXT NOT NULL,
                        last_seen_ms INTEGER NOT NULL);
                    CREATE TABLE artifacts (
                        build_id TEXT NOT NULL, name TEXT NOT NULL, path TEXT NOT NULL, size INTEGER NOT NULL,
                        sha256 BLOB NOT NULL, PRIMARY KEY (build_id, name));
                    CREATE TABLE events (
                        build_id TEXT NOT NULL, sequence INTEGER NOT NULL, unix_ms INTEGER NOT NULL, kind INTEGER NOT NULL,
                        job_id TEXT NOT NULL, attempt_id INTEGER NOT NULL, agent_id TEXT NOT NULL, message TEXT NOT NULL,
                        log_lines TEXT NOT NULL, PRIMARY KEY (build_id, sequence));
                    """)
        }
        // History for metrics, `kiln top` and `kiln report` (docs/operating.md).
        m.registerMigration("v2-history") { db in
            try db.execute(
                sql: """
                    ALTER TABLE builds ADD COLUMN distro TEXT NOT NULL DEFAULT '';
                    ALTER TABLE builds ADD COLUMN image_type TEXT NOT NULL DEFAULT '';
                    CREATE INDEX builds_finished ON builds(finished_ms);
                    ALTER TABLE jobs ADD COLUMN queued_ms INTEGER NOT NULL DEFAULT 0;
                    ALTER TABLE jobs ADD COLUMN started_ms INTEGER NOT NULL DEFAULT 0;
                    ALTER TABLE jobs ADD COLUMN finished_ms INTEGER NOT NULL DEFAULT 0;
                    ALTER TABLE jobs ADD COLUMN stream_bytes INTEGER NOT NULL DEFAULT 0;
                    ALTER TABLE jobs ADD COLUMN saved_ms INTEGER NOT NULL DEFAULT 0;
                    ALTER TABLE jobs ADD COLUMN saved_bytes INTEGER NOT NULL DEFAULT 0;
                    CREATE INDEX jobs_finished ON jobs(finished_ms);
                    CREATE INDEX jobs_pipeline ON jobs(pipeline_id);
                    ALTER TABLE attempts ADD COLUMN queued_ms INTEGER NOT NULL DEFAULT 0;
                    ALTER TABLE attempts ADD COLUMN emulated INTEGER NOT NULL DEFAULT 0;
                    ALTER TABLE attempts ADD COLUMN stream_bytes INTEGER NOT NULL DEFAULT 0;
                    CREATE INDEX attempts_finished ON attempts(finished_ms);
                    CREATE TABLE stage_runs (
                        build_id TEXT NOT NULL, job_id TEXT NOT NULL, attempt_id INTEGER NOT NULL, stage_index INTEGER NOT NULL,
                        stage_type TEXT NOT NULL, arch TEXT NOT NULL, mode TEXT NOT NULL, finished_ms INTEGER NOT NULL,
                        duration_ms INTEGER NOT NULL);
                    CREATE INDEX stage_runs_finished ON stage_runs(finished_ms);
                    """)
        }
        // Who stored each tree (`kiln store list/forget`, docs/operating.md).
        m.registerMigration("v3-provenance") { db in
            try db.execute(
                sql: """
                    CREATE TABLE trees (
                        pipeline_id TEXT PRIMARY KEY, agent_id TEXT NOT NULL, agent_key TEXT NOT NULL,
                        stored_ms INTEGER NOT NULL, stream_sha256 BLOB NOT NULL, stream_bytes INTEGER NOT NULL,
                        build_id TEXT NOT NULL, job_id TEXT NOT NULL, attempt_id INTEGER NOT NULL);
                    CREATE INDEX trees_key ON trees(agent_key);
                    """)
        }
        // Drained agents (`kiln agents drain`) and per-build stage timeouts.
        m.registerMigration("v4-drain-deadlines") { db in
            try db.execute(
                sql: """
                    ALTER TABLE agents ADD COLUMN drained INTEGER NOT NULL DEFAULT 0;
                    ALTER TABLE builds ADD COLUMN stage_timeout_ms INTEGER NOT NULL DEFAULT 0;
                    """)
        }
        // Retention: when a build's artifacts were removed (--keep-artifacts);
        // deleting a build's stage history by build.
        m.registerMigration("v5-retention") { db in
            try db.execute(
                sql: """
                    ALTER TABLE builds ADD COLUMN artifacts_expired_ms INTEGER NOT NULL DEFAULT 0;
                    CREATE INDEX stage_runs_build ON stage_runs(build_id);
                    """)
        }
        // Nothing looks trees up by key (`kiln store forget --agent` reads
        // the whole table), and the index cost every stored tree a write at
        // a random place in it.
        m.registerMigration("v6-trees-key-unindexed") { db in
            try db.execute(sql: "DROP INDEX IF EXISTS trees_key")
        }
        // The HTTP API's composes: one request, one or more images, each a build.
        m.registerMigration("v7-composes") { db in
            try db.execute(
                sql: """
                    CREATE TABLE composes (
                        id TEXT PRIMARY KEY, owner TEXT NOT NULL, created_ms INTEGER NOT NULL,
                        distribution TEXT NOT NULL, request BLOB NOT NULL);
                    CREATE INDEX composes_owner ON composes(owner, created_ms);
                    CREATE INDEX composes_created ON composes(created_ms);
                    CREATE TABLE compose_images (
                        compose_id TEXT NOT NULL, ordinal INTEGER NOT NULL, build_id TEXT NOT NULL,
                        arch TEXT NOT NULL, image_type TEXT NOT NULL, PRIMARY KEY (compose_id, ordinal));
                    CREATE INDEX compose_images_build ON compose_images(build_id);
                    """)
        }
        return m
    }

    /// The database file's size in bytes, its write-ahead log included.
    package var fileBytes: Int64 {
        [pool.path, pool.path + "-wal"].reduce(0) { sum, path in
            var st = stat()
            return sum + (stat(path, &st) == 0 ? Int64(st.st_size) : 0)
        }
    }

    /// Gives free pages back to the file system when at least `minFreeBytes`
    /// and a tenth of the file are free (deleted builds leave them): an
    /// incremental vacuum, or once for a file made before Kiln kept its
    /// pages that way a full VACUUM that converts it; then the WAL is
    /// checkpointed and truncated. Returns the sizes before and after, or
    /// nil when there was too little to gain. It goes through GRDB's writer
    /// like every commit, outside `commit`: a failure here is reported to
    /// the caller and does not make the database read-only.
    package func compact(minFreeBytes: Int64) async throws -> (before: Int64, after: Int64)? {
        let (mode, free, pages, pageSize) = try await pool.read { db in
            (
                try Int.fetchOne(db, sql: "PRAGMA auto_vacuum") ?? 0, try Int64.fetchOne(db, sql: "PRAGMA freelist_count") ?? 0,
                try Int64.fetchOne(db, sql: "PRAGMA page_count") ?? 0, try Int64.fetchOne(db, sql: "PRAGMA page_size") ?? 4096
            )
        }
        guard free * pageSize >= minFreeBytes, free * 10 >= pages else { return nil }
        let before = fileBytes
        try await pool.writeWithoutTransaction { db in
            if mode == 2 {
                try db.execute(sql: "PRAGMA incremental_vacuum")
            } else {
                try db.execute(sql: "PRAGMA auto_vacuum = INCREMENTAL")
                try db.execute(sql: "VACUUM")
            }
            try db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)")
        }
        return (before, fileBytes)
    }
}

/// The scheduler's database refused a write; it takes no more changes until
/// the scheduler restarts.
package struct ReadOnlyDatabase: Error, CustomStringConvertible {
    /// SQLite's error for the write that failed.
    package let cause: String
    package var description: String {
        "the scheduler cannot write its database (\(cause)) and takes no more work: nothing was changed; "
            + "free space or fix the disk under its state directory, then restart it (it resumes from what was committed)"
    }
}
