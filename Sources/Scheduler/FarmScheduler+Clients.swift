import Crypto
import Foundation
import Protocol

extension FarmScheduler {
    /// One request from a client's DEALER; the answer (or an `ErrorReply`)
    /// goes back with the same request id. Never throws.
    package func handleClient(identity: [UInt8], key: String?, message: WireMessage) async {
        let rid = message.envelope.requestID
        func reply(_ body: Kiln_V1_Envelope.OneOf_Body, data: [UInt8]? = nil) {
            outbox?.client(identity, WireMessage(body, requestID: rid, data: data))
        }
        do {
            do {
                try requireClient(key)
            } catch {
                warnRefused(key, on: "client", "refused a client request (\(message.envelope.body?.name ?? "empty")): \(error)")
                throw error
            }
            let owner = buildOwner(key)
            switch message.envelope.body {
            case .submit(let s):
                let r = try await submit(
                    manifestJSON: [UInt8](s.manifestJson), exports: s.exports, arch: s.arch,
                    label: s.label, distro: s.distro, imageType: s.imageType, notes: s.notes,
                    stageTimeoutMS: s.stageTimeoutMs, clientKey: key ?? "")
                reply(.submitReply(r))
            case .status(let s):
                reply(.statusReply(try await status(buildID: s.buildID, owner: owner, limit: Int(s.limit == 0 ? 20 : min(s.limit, 500)))))
            case .logs(let l):
                try await checkOwner(l.buildID, owner)
                reply(
                    .logsReply(
                        try await logs(
                            buildID: l.buildID, after: l.afterSequence,
                            limit: Int(l.limit == 0 ? 500 : min(l.limit, 5000)))))
            case .cancelBuild(let c):
                try await checkOwner(c.buildID, owner)
                reply(.cancelBuildReply(try await cancel(buildID: c.buildID)))
            case .agents:
                try requireAdmin(key, "listing the farm's agents")
                reply(.agentsReply(agentsReply()))
            case .drain(let d):
                try requireAdmin(key, "draining an agent (kiln agents \(d.drained ? "drain" : "undrain"))")
                reply(.drainReply(try await setDrained(d.agentID, d.drained)))
            case .fetch(let f):
                try await checkOwner(f.buildID, owner)
                let (r, data) = try await fetch(f)
                reply(.fetchReply(r), data: data)
            case .top:
                try requireAdmin(key, "the farm's snapshot (kiln top)")
                var r = Kiln_V1_TopReply()
                r.snapshotJson = Data(try await snapshotJSON())
                reply(.topReply(r))
            case .delete(let d):
                try await checkOwner(d.buildID, owner)
                reply(.deleteReply(try await delete(buildID: d.buildID)))
            case .report(let q):
                try requireAdmin(key, "the farm's report (kiln report)")
                var r = Kiln_V1_ReportReply()
                r.reportJson = Data(try await reportJSON(sinceMS: q.sinceUnixMs))
                reply(.reportReply(r))
            default:
                droppedMessages += 1
                throw SchedulerError.badRequest("\(message.envelope.body?.name ?? "an empty message") is not a client request")
            }
        } catch {
            var e = Kiln_V1_ErrorReply()
            switch error {
            case SchedulerError.badRequest(let m):
                e.code = .badRequest
                e.message = m
            case SchedulerError.notFound(let m):
                e.code = .notFound
                e.message = m
            case SchedulerError.unavailable(let m):
                e.code = .unavailable
                e.message = m
            case let f as ReadOnlyDatabase:
                e.code = .unavailable
                e.message = f.description
            default:
                e.code = .internal
                e.message = "\(error)"
            }
            reply(.error(e))
        }
    }

    /// owner: only builds this key submitted (nil: every build, for an admin).
    func status(buildID: String, owner: String? = nil, limit: Int) async throws -> Kiln_V1_StatusReply {
        var reply = try await records.status(buildID: buildID, owner: owner, limit: limit)
        if !buildID.isEmpty && reply.builds.isEmpty {
            throw SchedulerError.notFound("no build \(buildID); `kiln status` lists recent builds")
        }
        // Memory is ahead of the (asynchronously recorded) rows — unless a
        // write failed: then only the rows are true.
        for i in reply.builds.indices where db.readOnly == nil {
            var s = reply.builds[i]
            for k in s.jobs.indices {
                guard let live = core.jobs[s.jobs[k].jobID] else { continue }
                s.jobs[k].state = live.state.wire
                s.jobs[k].stageIndex = live.stageIndex
                s.jobs[k].stageCount = live.stageCount
                s.jobs[k].stageType = live.stageType
                s.jobs[k].agentID = live.agentID
                s.jobs[k].attempts = UInt32(live.attempts)
                s.jobs[k].attemptID = live.attemptID
            }
            if let live = core.builds[s.buildID] { s.state = live.state.wire }
            reply.builds[i] = s
        }
        return reply
    }

    func logs(buildID: String, after: UInt64, limit: Int) async throws -> Kiln_V1_LogsReply {
        let live = core.builds[buildID] != nil
        let page = try await records.events(buildID: buildID, after: after, limit: limit)
        guard page.exists else { throw SchedulerError.notFound("no build \(buildID); `kiln status` lists recent builds") }
        var reply = Kiln_V1_LogsReply()
        reply.events = page.events
        reply.nextSequence = page.events.last?.sequence ?? after
        let done = !live && page.state?.isFinished == true
        reply.finished = done && page.events.count < limit && !page.cut
        return reply
    }

    func cancel(buildID: String) async throws -> Kiln_V1_CancelReply {
        var reply = Kiln_V1_CancelReply()
        try db.checkWritable()
        if core.builds[buildID] != nil {
            act { $0.cancel(buildID) }
            // Every record of the cancel is committed (or the database turned
            // read-only and the client hears why) before the client is told.
            try await db.commit { _ in }
            reply.state = .cancelled
            return reply
        }
        let stored = try await records.buildState(buildID)
        guard stored.exists else { throw SchedulerError.notFound("no build \(buildID); `kiln status` lists recent builds") }
        reply.state = stored.state?.wire ?? .unspecified
        return reply
    }

    func agentsReply() -> Kiln_V1_AgentsReply {
        var reply = Kiln_V1_AgentsReply()
        reply.agents = core.agents.values.sorted(by: { $0.id < $1.id }).map(agentInfo)
        return reply
    }

    /// One agent as `kiln agents` shows it.
    func agentInfo(_ a: FarmAgent) -> Kiln_V1_AgentInfo {
        var i = Kiln_V1_AgentInfo()
        i.agentID = a.id
        i.arches = a.arches
        i.emulatedArches = a.emulated
        i.state = a.online ? .online : .offline
        i.drained = a.drained
        i.notTakingJobs = a.notTakingJobs
        i.slots = UInt32(a.slots)
        i.slotsInUse = UInt32(a.attempts.count)
        i.lastHeartbeatUnixMs = a.lastSeenMS
        i.freeDisk = a.freeDisk
        i.version = a.version
        i.publicKey = a.publicKey
        for id in a.attempts.sorted() {
            guard let at = core.attempts[id], let job = core.jobs[at.jobID] else { continue }
            var j = Kiln_V1_AgentJob()
            j.attemptID = id
            j.jobID = job.id
            j.buildID = job.buildID
            j.pipelineName = job.pipelineName
            i.jobs.append(j)
        }
        return i
    }

    func fetch(_ f: Kiln_V1_FetchRequest) async throws -> (Kiln_V1_FetchReply, [UInt8]) {
        let (buildID, name) = (f.buildID, f.artifact)
        let row = try await records.artifact(buildID: buildID, name: name)
        guard let row else {
            let expired = try await records.artifactsExpiredMS(buildID)
            if let expired, expired > 0 {
                throw SchedulerError.notFound(
                    "build \(buildID)'s artifacts were removed \(Self.utc(expired)) (the scheduler's "
                        + "--keep-artifacts); submit the build again for new ones")
            }
            throw SchedulerError.notFound(
                "build \(buildID) has no artifact \"\(AgentText.field(name, bytes: 256))\"; "
                    + "`kiln status \(buildID)` lists its artifacts")
        }
        let path = row.path
        let size = UInt64(row.size)
        var sha256 = row.sha256
        if sha256.isEmpty {
            sha256 = Data(try await AssemblyRunner.sha256(path))
            let digest = sha256
            // Only a cache of the file's digest: a read-only database does not stop the fetch.
            try? await records.updateArtifactDigest(buildID: buildID, name: name, sha256: digest)
        }
        let length = Int(min(UInt64(f.maxLength == 0 ? 1 << 20 : min(f.maxLength, 2 << 20)), size - min(f.offset, size)))
        let offset = f.offset
        let data = try await Task.detached { () throws -> [UInt8] in
            guard let h = FileHandle(forReadingAtPath: path) else {
                throw SchedulerError.notFound("artifact \(name) of build \(buildID) is gone from \(path)")
            }
            defer { try? h.close() }
            try h.seek(toOffset: offset)
            return [UInt8](try h.read(upToCount: length) ?? Data())
        }.value
        var r = Kiln_V1_FetchReply()
        r.artifact = name
        r.offset = offset
        r.length = UInt32(data.count)
        r.totalLength = size
        r.sha256 = sha256
        r.eof = offset + UInt64(data.count) >= size
        return (r, data)
    }

    /// Throws "no build" unless `owner` (nil: an admin) submitted the build:
    /// a client cannot tell another client's build from one that does not exist.
    func checkOwner(_ buildID: String, _ owner: String?) async throws {
        guard let owner else { return }
        let key = try await records.buildOwner(buildID)
        guard key == owner, !owner.isEmpty else {
            throw SchedulerError.notFound("no build \(buildID) of this key; `kiln status` lists your recent builds")
        }
    }
}
