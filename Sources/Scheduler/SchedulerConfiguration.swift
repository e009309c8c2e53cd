import Foundation

/// Tunables of a scheduler; defaults suit a small farm.
package struct SchedulerConfiguration: Sendable {
    /// Directory of `scheduler.sqlite`, `artifacts/` and `logs/`.
    package var stateDirectory: String
    /// Agents send something at least this often.
    package var heartbeatMS: UInt32 = 2_000
    /// An attempt without traffic from its agent for this long is lost.
    package var leaseMS: UInt32 = 30_000
    /// An agent silent for this long is offline and its attempts are requeued.
    package var agentTimeoutMS: UInt32 = 8_000
    /// Attempts per job for infrastructure failures (agent lost, stream broken).
    package var maxAttempts: Int = 3
    /// Stream credit granted ahead of what is verified on disk.
    package var streamWindow: UInt64 = 8 << 20
    package var maxChunkBytes: UInt32 = 1 << 20
    /// Bounds on each attempt's tree stream (length, extracted size, entries,
    /// zstd window, free space kept in the store).
    package var streamLimits = StreamLimits.default
    /// Assemblies run at once on the scheduler.
    package var assemblyConcurrency: Int = 2
    /// Agents that run inside this process on the scheduler's own tree store
    /// (embedded mode): their trees need no streaming.
    package var sharedStoreAgents: Set<String> = []
    /// Files and directories the assembly stages' programs must not see: the
    /// secret key's directory, the allow list, the database and the artifacts
    /// (each program runs in a mount namespace of its own with them covered).
    package var hiddenFromAssembly: [String] = []
    /// The most slots one agent is given, whatever its Hello says.
    package var maxSlotsPerAgent: Int = 16
    /// An attempt still running this long after its assignment is failed and
    /// requeued (an agent that keeps reporting progress holds a job no longer).
    package var attemptDeadlineMS: Int64 = 3 * 3600 * 1000
    /// The longest one stage may run on an agent, unless a build asks for
    /// less or more (at most `attemptDeadlineMS`); the agent stops it there.
    package var stageTimeoutMS: Int64 = 3600 * 1000
    /// Bounds on what agents write into a build's log (`AgentText`).
    package var logLimits = AgentText.Limits()
    /// Metrics and stage history (on by default; off only to measure what they cost).
    package var telemetry = true
    /// Image type names the metrics label as themselves (the CLI gives
    /// Images' list); any other name a client sends is labelled "other", so
    /// that clients cannot grow the label set.
    package var imageTypes: Set<String> = []
    /// Below this many bytes free on the file system of the state directory
    /// or of the tree store, submits are refused and no job or assembly
    /// starts, until space returns (`--min-free-gib`, 2 GiB; 0 here: no
    /// check, as in `kiln build`'s embedded farm).
    package var minFreeBytes: UInt64 = 0
    /// How often free space is looked at.
    package var diskPollMS: Int64 = 2_000
    /// Artifacts of builds finished longer ago than this are removed; the
    /// build's record stays and says so (`--keep-artifacts`). nil: kept.
    package var keepArtifactsMS: Int64?
    /// Builds finished longer ago than this are deleted with their events,
    /// logs and artifacts (`--keep-history`). nil: kept.
    package var keepHistoryMS: Int64?
    /// How often the retention pass runs (expiry, history, VACUUM check).
    package var retentionIntervalMS: Int64 = 60_000
    /// The database file is compacted at most this often, and only when at
    /// least `vacuumMinBytes` (and a tenth of the file) are free pages.
    package var vacuumIntervalMS: Int64 = 3_600_000
    package var vacuumMinBytes: Int64 = 1 << 20
    /// How often the tree store is pruned to its cap when nothing was stored
    /// (a stored tree prunes within a second anyway); nil: never while
    /// running (embedded `kiln build` prunes after the build instead).
    package var storePruneInterval: Duration?
    /// Unix milliseconds; injected so tests can move time.
    package var now: @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970 * 1000) }

    package init(stateDirectory: String) {
        self.stateDirectory = stateDirectory
    }

    package var databasePath: String { stateDirectory + "/scheduler.sqlite" }
    package var artifactsDirectory: String { stateDirectory + "/artifacts" }
    package var logsDirectory: String { stateDirectory + "/logs" }

    /// What `hiddenFromAssembly` holds for a scheduler with this secret key and allow list.
    package func secrets(keyFile: String, allowDirectory: String) -> [String] {
        let key = URL(fileURLWithPath: keyFile).standardizedFileURL
        // The key file itself always (bound over with /dev/null); its
        // directory too, for keys kept beside it, unless that directory holds
        // the store or the source cache (the executor drops such an entry).
        return [
            key.path, key.deletingLastPathComponent().path, allowDirectory,
            databasePath, databasePath + "-wal", databasePath + "-shm", artifactsDirectory,
        ]
    }
}
