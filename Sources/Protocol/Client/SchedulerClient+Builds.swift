import Crypto
import Foundation

extension SchedulerClient {
    package func submit(manifestJSON: [UInt8], exports: [String], arch: String, label: String,
                        distro: String = "", imageType: String = "", notes: [String] = [],
                        stageTimeoutMS: UInt64 = 0) async throws -> Kiln_V1_SubmitReply {
        var s = Kiln_V1_SubmitRequest()
        s.manifestJson = Data(manifestJSON)
        s.exports = exports
        s.arch = arch
        s.label = label
        s.distro = distro
        s.imageType = imageType
        s.notes = notes
        s.stageTimeoutMs = stageTimeoutMS
        guard case .submitReply(let r) = try await request(.submit(s)).envelope.body else { throw ClientError.unexpected("to SubmitRequest") }
        return r
    }

    package func status(_ buildID: String = "", limit: UInt32 = 0) async throws -> [Kiln_V1_BuildStatus] {
        var s = Kiln_V1_StatusRequest()
        s.buildID = buildID
        s.limit = limit
        guard case .statusReply(let r) = try await request(.status(s)).envelope.body else { throw ClientError.unexpected("to StatusRequest") }
        return r.builds
    }

    package func agents() async throws -> [Kiln_V1_AgentInfo] {
        guard case .agentsReply(let r) = try await request(.agents(Kiln_V1_AgentsRequest())).envelope.body else {
            throw ClientError.unexpected("to AgentsRequest")
        }
        return r.agents
    }

    /// Drains agent `agentID` (true) or undrains it (false); an admin's request.
    package func drain(_ agentID: String, drained: Bool) async throws -> Kiln_V1_DrainReply {
        var d = Kiln_V1_DrainRequest()
        d.agentID = agentID
        d.drained = drained
        guard case .drainReply(let r) = try await request(.drain(d)).envelope.body else {
            throw ClientError.unexpected("to DrainRequest")
        }
        return r
    }

    /// The farm snapshot (JSON, `FarmSnapshot` in the Scheduler module).
    package func top() async throws -> [UInt8] {
        guard case .topReply(let r) = try await request(.top(Kiln_V1_TopRequest())).envelope.body else {
            throw ClientError.unexpected("to TopRequest")
        }
        return [UInt8](r.snapshotJson)
    }

    /// History since `sinceUnixMS` (JSON, `FarmReport` in the Scheduler module).
    package func report(sinceUnixMS: Int64) async throws -> [UInt8] {
        var q = Kiln_V1_ReportRequest()
        q.sinceUnixMs = sinceUnixMS
        guard case .reportReply(let r) = try await request(.report(q)).envelope.body else {
            throw ClientError.unexpected("to ReportRequest")
        }
        return [UInt8](r.reportJson)
    }

    package func cancel(_ buildID: String) async throws -> Kiln_V1_BuildState {
        var c = Kiln_V1_CancelRequest()
        c.buildID = buildID
        guard case .cancelBuildReply(let r) = try await request(.cancelBuild(c)).envelope.body else {
            throw ClientError.unexpected("to CancelRequest")
        }
        return r.state
    }

    /// Deletes a finished build: its artifacts, events, logs and records.
    package func delete(_ buildID: String) async throws -> Kiln_V1_DeleteReply {
        var d = Kiln_V1_DeleteRequest()
        d.buildID = buildID
        guard case .deleteReply(let r) = try await request(.delete(d)).envelope.body else {
            throw ClientError.unexpected("to DeleteRequest")
        }
        return r
    }

    /// Calls `onEvent` for each event of the build, from `after` on, until
    /// the build is over (with `follow`) or the events known now are shown.
    package func logs(_ buildID: String, after: UInt64 = 0, follow: Bool,
                      onEvent: (Kiln_V1_BuildEvent) -> Void) async throws {
        var next = after
        while true {
            var l = Kiln_V1_LogsRequest()
            l.buildID = buildID
            l.afterSequence = next
            guard case .logsReply(let r) = try await request(.logs(l)).envelope.body else { throw ClientError.unexpected("to LogsRequest") }
            r.events.forEach(onEvent)
            next = r.nextSequence
            if r.finished || (!follow && r.events.isEmpty) { return }
            if r.events.isEmpty { try await Task.sleep(for: .milliseconds(300)) }
        }
    }

    /// Downloads an artifact to `path` (through a temporary name), checking
    /// the whole file's sha256; `progress` gets (bytes, total).
    package func fetch(_ buildID: String, artifact: String, to path: String,
                       progress: (UInt64, UInt64) -> Void = { _, _ in }) async throws {
        let tmp = path + ".part"
        guard FileManager.default.createFile(atPath: tmp, contents: nil), let out = FileHandle(forWritingAtPath: tmp) else {
            throw ClientError.unexpected("cannot write \(tmp)")
        }
        var ok = false
        defer {
            try? out.close()
            if !ok { try? FileManager.default.removeItem(atPath: tmp) }
        }
        var hasher = SHA256()
        var offset: UInt64 = 0
        var expected = Data()
        while true {
            var f = Kiln_V1_FetchRequest()
            f.buildID = buildID
            f.artifact = artifact
            f.offset = offset
            f.maxLength = 2 << 20
            let reply = try await request(.fetch(f))
            guard case .fetchReply(let r) = reply.envelope.body, r.offset == offset else {
                throw ClientError.unexpected("to FetchRequest")
            }
            let data = reply.data ?? []
            // Holes stay holes: skip runs of zeros instead of writing them.
            if data.allSatisfy({ $0 == 0 }) {
                try out.seek(toOffset: offset + UInt64(data.count))
            } else {
                try out.seek(toOffset: offset)
                out.write(Data(data))
            }
            hasher.update(data: data)
            offset += UInt64(data.count)
            expected = r.sha256
            progress(offset, r.totalLength)
            if r.eof {
                try out.truncate(atOffset: r.totalLength)
                break
            }
        }
        guard Data(hasher.finalize()) == expected else {
            throw ClientError.unexpected("artifact \(artifact) of build \(buildID) arrived with a wrong sha256; fetch it again")
        }
        try out.synchronize()
        guard rename(tmp, path) == 0 else { throw ClientError.unexpected("cannot rename \(tmp) to \(path)") }
        ok = true
    }
}
