import Foundation
import Protocol
import Stages

/// When the retention pass last ran and what it has done once.
struct RetentionClock {
    var ranMS: Int64 = 0
    var running = false
    var vacuumedMS: Int64 = 0
    /// Files of builds whose rows are gone were looked for (once per start).
    var sweptOrphans = false
    /// Where the next pass goes on looking for records of trees the store no longer holds (a rowid of `trees`).
    var treeRecordCursor: Int64 = 0
}

/// Retention and disk space (docs/operating.md): the free-space threshold
/// below which no new work starts, artifacts that expire (`--keep-artifacts`),
/// builds deleted by a client (`kiln delete`) or by age (`--keep-history`),
/// and the database file given back its free pages.
extension FarmScheduler {
    /// Builds at most this many at a time in one transaction.
    static let retentionBatch = 200

    // MARK: - Free space

    /// Looks at free space under the state directory and the tree store;
    /// below `minFreeBytes` submits are refused and nothing new starts,
    /// above it again work resumes by itself.
    func checkDisk() {
        let low = LowDisk.check(
            [("state directory", config.stateDirectory), ("tree store", store.root)],
            threshold: config.minFreeBytes)
        let was = lowDisk
        lowDisk = low
        switch (was, low) {
        case (nil, let low?):
            logger.error("low on disk: \(Self.lowDiskText(low))")
        case (_?, nil):
            logger.notice("disk space is back above --min-free-gib: taking builds and starting jobs again")
            scheduleDispatch()
            act { $0.startAssemblies() }
        default:
            break
        }
    }

    /// What a refused submit and the log say while the disk is low: the
    /// file system, its free space, the threshold and the fix.
    static func lowDiskText(_ low: LowDisk) -> String {
        "the scheduler's \(low); it takes no new build and starts no job until there is more. Free space there "
            + "(`kiln delete BUILD`, a shorter --keep-artifacts or --keep-history, a smaller --store-cap) "
            + "and it resumes by itself"
    }

    // MARK: - The retention pass

    /// Starts the retention pass when it is due (from `tick`); one at a time.
    func startRetentionIfDue() {
        let t = now
        guard !retention.running, t - retention.ranMS >= config.retentionIntervalMS else { return }
        retention.running = true
        retention.ranMS = t
        Task { await self.retentionPass() }
    }

    func retentionPass() async {
        defer { retention.running = false }
        guard db.readOnly == nil else { return }
        do {
            if !retention.sweptOrphans {
                retention.sweptOrphans = true
                try await sweepOrphans()
            }
            try await forgetRecordsOfGoneTrees()
            if let keep = config.keepArtifactsMS { try await expireArtifacts(keep: keep) }
            if let keep = config.keepHistoryMS { try await deleteHistory(keep: keep) }
        } catch {
            logger.warning("retention: \(error)")
        }
        await compactIfDue()
    }

    /// The provenance records (`trees`) of trees that left the store (pruned
    /// by its cap, forgotten by an operator): a slice per pass, from where
    /// the last one stopped, so the table follows the store instead of
    /// growing for as long as the farm runs.
    func forgetRecordsOfGoneTrees() async throws {
        let slice = try await records.treeRecordSlice(afterRowID: retention.treeRecordCursor, limit: Self.treeRecordBatch)
        let gone = slice.filter { !store.contains($0.pipelineID) }
        if !gone.isEmpty {
            try await records.forgetTreeRecords(gone)
            logger.info("forgot the records of \(gone.count) tree(s) no longer in the store")
        }
        retention.treeRecordCursor = slice.count < Self.treeRecordBatch ? 0 : slice.last?.rowID ?? 0
    }

    /// Tree records looked at per retention pass (one `access` each).
    static let treeRecordBatch = 1000

    /// Removes the artifacts of builds that finished more than `keep` ms
    /// ago; each build's record stays, says when (`artifacts_expired_ms`,
    /// `kiln status`) and gets an event saying why.
    func expireArtifacts(keep: Int64) async throws {
        let cutoff = now - keep
        let text =
            "artifacts removed: kept for \(Since.format(keep)) after the build finished (--keep-artifacts); "
            + "submit the build again for new ones"
        while db.readOnly == nil {
            let ids = try await records.buildsWithArtifacts(finishedBefore: cutoff, limit: Self.retentionBatch)
                .filter { core.builds[$0] == nil }
            if ids.isEmpty { return }
            try await records.expireArtifacts(of: ids, atMS: now, message: text)
            for id in ids { await removeFiles(of: id, logs: false) }
            logger.info("removed the artifacts of \(ids.count) build(s) that finished more than \(Since.format(keep)) ago (--keep-artifacts)")
            if ids.count < Self.retentionBatch { return }
        }
    }

    /// Deletes builds that finished more than `keep` ms ago, with their
    /// events, jobs, attempts, stage history, artifacts and logs.
    func deleteHistory(keep: Int64) async throws {
        let cutoff = now - keep
        while db.readOnly == nil {
            let ids = try await records.buildsFinished(before: cutoff, limit: Self.retentionBatch).filter { core.builds[$0] == nil }
            if ids.isEmpty { return }
            try await records.deleteBuilds(ids)
            for id in ids { await removeFiles(of: id, logs: true) }
            logger.info("deleted \(ids.count) build(s) that finished more than \(Since.format(keep)) ago (--keep-history)")
            if ids.count < Self.retentionBatch { return }
        }
    }

    /// Compacts the database file when enough of it is free pages, at most
    /// once every `vacuumIntervalMS`, and never while the disk is low (a
    /// first VACUUM copies the whole file).
    func compactIfDue() async {
        let t = now
        guard lowDisk == nil, db.readOnly == nil, t - retention.vacuumedMS >= config.vacuumIntervalMS else { return }
        do {
            guard let sizes = try await db.compact(minFreeBytes: config.vacuumMinBytes) else { return }
            retention.vacuumedMS = t
            let (before, after) = (SchedulerCore.decimal(Double(sizes.before) / 1e6), SchedulerCore.decimal(Double(sizes.after) / 1e6))
            logger.info("compacted scheduler.sqlite: \(before) MB → \(after) MB")
        } catch {
            retention.vacuumedMS = t
            logger.warning("could not compact scheduler.sqlite: \(error)")
        }
    }

    // MARK: - Deleting builds

    /// `kiln delete`: a finished build's artifacts, events, logs and
    /// records. The caller has checked that the key may see the build.
    func delete(buildID: String) async throws -> Kiln_V1_DeleteReply {
        guard Self.isBuildID(buildID) else {
            throw SchedulerError.badRequest(
                "build_id: \"\(AgentText.field(buildID, bytes: 80))\" is not a build ID; "
                    + "`kiln status` lists your builds")
        }
        if let live = core.builds[buildID] {
            let state = live.state == .running ? "running" : "queued"
            throw SchedulerError.badRequest(
                "build \(buildID) is \(state): only a finished build can be deleted; "
                    + "`kiln cancel \(buildID)` first, then `kiln delete \(buildID)`")
        }
        try db.checkWritable()
        let found = try await records.contents(of: buildID)
        guard let found else { throw SchedulerError.notFound("no build \(buildID); `kiln status` lists recent builds") }
        // The rows go first (then nobody is shown what is about to vanish);
        // files a crash leaves behind are removed at the next start.
        try await records.deleteBuilds([buildID])
        await removeFiles(of: buildID, logs: true)
        logger.info("build deleted by a client", metadata: ["build.id": "\(buildID)"])
        var reply = Kiln_V1_DeleteReply()
        reply.buildID = buildID
        reply.artifacts = UInt32(clamping: found.artifacts)
        reply.artifactBytes = UInt64(max(0, found.bytes))
        reply.events = UInt32(clamping: found.events)
        return reply
    }

    /// Removes `artifacts/ID` (and `logs/ID`): renamed away in one step,
    /// then deleted by `rm` in a process of its own.
    func removeFiles(of id: String, logs: Bool) async {
        guard Self.isBuildID(id) else { return }
        let dirs = [config.artifactsDirectory] + (logs ? [config.logsDirectory] : [])
        for dir in dirs {
            let doomed = "\(dir)/.removing-\(id)-\(UUID().uuidString.prefix(6).lowercased())"
            guard rename("\(dir)/\(id)", doomed) == 0 else { continue }
            await removeTree(doomed)
        }
    }

    func removeTree(_ path: String) async {
        do {
            try await CommandRunner(logPath: "/dev/null", logger: logger).run(["rm", "-rf", "--one-file-system", path])
        } catch {
            logger.warning("could not remove \(path): \(error)")
        }
    }

    /// Once per start: removes what an interrupted removal left
    /// (`.removing-*`) and the artifacts and logs of builds whose records are
    /// gone (deleted just before a crash).
    func sweepOrphans() async throws {
        let known = try await records.allBuildIDs()
        for dir in [config.artifactsDirectory, config.logsDirectory] {
            for name in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] {
                if name.hasPrefix(".removing-") || (Self.isBuildID(name) && !known.contains(name) && core.builds[name] == nil) {
                    await removeTree("\(dir)/\(name)")
                }
            }
        }
    }

    /// `on 2026-12-03 02:54 UTC`.
    static func utc(_ unixMS: Int64) -> String {
        let f = DateFormatter()
        f.dateFormat = "yyyy-MM-dd HH:mm"
        f.timeZone = TimeZone(identifier: "UTC")
        return "on " + f.string(from: Date(timeIntervalSince1970: Double(unixMS) / 1000)) + " UTC"
    }

    /// Whether `s` can be a build ID (`newID`): what names a directory under
    /// the state directory, so never a path, a dot file or anything long.
    static func isBuildID(_ s: String) -> Bool {
        let bytes = Array(s.utf8)
        guard (1...64).contains(bytes.count), let first = bytes.first, first != UInt8(ascii: "-") else { return false }
        return bytes.allSatisfy { (48...57).contains($0) || (97...122).contains($0) || $0 == UInt8(ascii: "-") }
    }
}
