import Foundation
import KilnTestSupport
import Protocol
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Issue 15, acceptance 2: the soak. A real `kiln scheduler`, two honest
/// `kiln agent`s and a hostile peer holding a client key, on loopback with
/// CURVE and the roles layout, for `KILN_SOAK_MINUTES` minutes: builds are
/// submitted continuously (new trees, repeats, failures on purpose, stage
/// timeouts, cancels at random moments), the hostile peer attacks the agent
/// port (SoakHostile), and random SIGKILLs hit the agents and the
/// scheduler. Then it checks that no build was lost, duplicated or
/// resurrected, that nothing of the hostile key's was stored, that stores
/// and state stayed under their caps and the scheduler under 300 MB of
/// RSS, and reports the figures (a table, and JSON with stable keys).
///
/// `ops/soak` runs it; no tier does (it runs only with `KILN_SOAK_MINUTES`).
@Suite(.serialized, .tags(.farm))
struct SoakTests {
    @Test("soak: builds, SIGKILLs and a hostile client key for KILN_SOAK_MINUTES; nothing lost, stored from it, or over its cap",
          .enabled(if: SoakSettings.requested, "runs only with KILN_SOAK_MINUTES set (ops/soak); no tier runs it"),
          .timeLimit(.minutes(Int(SoakSettings().minutes.rounded(.up)) + 20)))
    func soak() async throws {
        let run = try await SoakRun(settings: SoakSettings())
        let report = await run.run()
        for check in report.checks where !check.ok {
            Issue.record("soak check failed: \(check.name): \(check.detail)")
        }
    }
}

/// One soak: the farm, the load, the chaos and the hostile peer, and the
/// checks at the end.
final class SoakRun: @unchecked Sendable {
    let settings: SoakSettings
    let farm: FarmHarness
    let ledger = SoakLedger()
    let marker: String
    let metricsPort: Int
    let retentionOptions: Bool
    let scheduler: SoakDaemon
    let agents: [SoakDaemon]
    var daemons: [SoakDaemon] { [scheduler] + agents }
    static let lease = 6, attemptDeadline = "90s", stageTimeout = "30s", buildStageTimeoutMS: UInt64 = 3000

    init(settings: SoakSettings) async throws {
        self.settings = settings
        farm = try FarmHarness()
        var rng = SplitMix64(seed: settings.seed)
        marker = "kiln-soak-hostile-" + rng.bytes(8).map { String(format: "%02x", $0) }.joined()
        _ = try CurveKeyPair.generate().write(prefix: "\(farm.dir)/\(SoakHostile.keyName)")
        try farm.allow(SoakHostile.keyName, as: "clients")
        metricsPort = try FarmHarness.freePortPair()
        // The retention engineer's options, when this kiln has them.
        let help = try await runChild(FarmHarness.kiln, ["scheduler", "--help"], mergeErrors: true).output
        retentionOptions = help.contains("--keep-artifacts")
        let dir = farm.dir, endpoint = farm.endpoint
        let cap = settings.storeCapGiB
        scheduler = SoakDaemon(name: "scheduler", arguments: [
            "scheduler", "--bind", endpoint, "--state", "\(dir)/scheduler", "--key", "\(dir)/scheduler.key",
            "--allow", "\(dir)/allow", "--store", "\(dir)/scheduler/store", "--logs", "\(dir)/scheduler/logs",
            "--lease", "\(Self.lease)", "--max-attempts", "5", "--attempt-deadline", Self.attemptDeadline,
            "--stage-timeout", Self.stageTimeout, "--store-cap", cap, "--metrics", "127.0.0.1:\(metricsPort)",
        ] + (retentionOptions ? ["--keep-artifacts", "5m"] : []), logPath: "\(dir)/scheduler.out")
        agents = ["agent-a", "agent-b"].map { name in
            SoakDaemon(name: name, arguments: [
                "agent", "--scheduler", endpoint, "--arch", "x86_64", "--name", name, "--state", "\(dir)/\(name)",
                "--key", "\(dir)/\(name).key", "--scheduler-key", "\(dir)/scheduler.pub", "--store", "\(dir)/\(name)/store",
                "--logs", "\(dir)/\(name)/logs", "--slots", "1", "--store-cap", cap,
            ], environment: ["KILN_TEST_MARK": dir], logPath: "\(dir)/\(name).out")
        }
    }

    /// Starts the scheduler and waits until it listens (a scheduler that
    /// exits instead is tried again, twice, and each failure recorded).
    func startScheduler() async {
        for _ in 0..<3 {
            guard let offset = try? scheduler.start() else { continue }
            let up = await waitFor(.seconds(60), interval: .milliseconds(100)) {
                self.scheduler.log(from: offset).contains("kiln scheduler: agents on") || !self.scheduler.isRunningNow
            }
            if up, scheduler.isRunningNow { return }
            let status = scheduler.reapIfExited().map { "exit status \($0)" } ?? "not listening after 60 s"
            ledger.state.withLock { $0.restartFailures.append("the scheduler did not start (\(status)):\n\(scheduler.tail())") }
            _ = await scheduler.kill()
        }
    }

    func start(_ d: SoakDaemon) async {
        if d === scheduler { return await startScheduler() }
        do { try d.start() } catch {
            ledger.state.withLock { $0.restartFailures.append("\(d.name) did not start: \(error)") }
        }
    }

    // MARK: - The run

    func run() async -> SoakReport {
        print("kiln soak: \(settings.minutes) min, seed \(settings.seed), farm in \(farm.dir)")
        await startScheduler()
        for a in agents { await start(a) }
        guard let admin = try? await farm.client(), let client = try? await farm.client(keyName: "client") else {
            return await finish(admin: nil, setupFailure: "no client connection to the scheduler:\n\(scheduler.tail())")
        }
        let online = await farm.eventually(.seconds(60)) {
            ((try? await admin.agents()) ?? []).filter { $0.state == .online }.count == 2
        }
        guard online else {
            return await finish(admin: admin, setupFailure: "the agents did not come online:\n\(agents.map { $0.tail() }.joined(separator: "\n"))")
        }
        let hostile: SoakHostile
        do { hostile = try await SoakHostile.make(farm, ledger: ledger, marker: marker) } catch {
            return await finish(admin: admin, setupFailure: "the hostile streams could not be made: \(error)")
        }

        let background = [
            Task { await self.track(admin) },
            Task { await self.verify(admin) },
            Task { await self.monitor() },
        ]
        let load = [
            Task { await self.submit(client) },
            Task { await self.chaos() },
            Task { await hostile.run(seed: self.settings.seed &+ 7) },
        ]
        await soakPause(settings.minutes * 60) { false }
        ledger.state.withLock { $0.stopping = true }
        print("kiln soak: \(settings.minutes) min of load over; letting every build finish")
        for t in load { await t.value }
        let cancels = cancelTasks.withLock { $0 }
        for t in cancels { await t.value }

        // Every accepted build ends, with the farm whole again (the chaos has started what it
        // killed, the monitor starts what died by itself): a deadline, not a sleep.
        let settled = await waitFor(.seconds(300), interval: .seconds(1)) { self.ledger.unsettled().isEmpty }
        if !settled { print("kiln soak: builds still unfinished after 300 s: \(ledger.unsettled())") }
        _ = await waitFor(.seconds(180), interval: .seconds(1)) { self.ledger.verifyPending == 0 && self.verifying.withLock { !$0 } }
        for t in background { t.cancel() }
        for t in background { await t.value }
        let report = await finish(admin: admin, setupFailure: nil, hostile: hostile)
        await client.close()
        return report
    }

    let cancelTasks = Mutex<[Task<Void, Never>]>([])
    let verifying = Mutex(false)

    // MARK: Load

    /// Submits builds as the honest client while fewer than `maxInFlight` of its builds are unfinished.
    func submit(_ client: SchedulerClient) async {
        var rng = SplitMix64(seed: settings.seed &+ 1)
        var n = 0
        var fresh: [String] = []
        let honest: Set<SoakKind> = [.new, .repeat, .fail, .timeout, .cancel]
        while !ledger.stopping {
            if ledger.unsettled(honest).count < settings.maxInFlight {
                n += 1
                let roll = rng.unit()
                var kind: SoakKind = roll < 0.40 ? .new : roll < 0.65 ? .repeat : roll < 0.75 ? .fail : roll < 0.82 ? .timeout : .cancel
                if kind == .repeat && fresh.isEmpty { kind = .new }
                // Half the cancelled builds hang in a stage until cancelled (or, were the cancel lost, their stage timeout).
                let hang = kind == .cancel && rng.unit() < 0.5
                let hostname = switch kind {
                case .repeat: fresh[Int(rng.next() % UInt64(fresh.count))]
                case .fail: "soak-f\(n)"
                case .timeout: "soak-t\(n)"
                case .cancel: hang ? "soak-ch\(n)" : "soak-c\(n)"
                default: "soak-\(n)"
                }
                if kind == .new {
                    fresh.append(hostname)
                    if fresh.count > 20 { fresh.removeFirst() }
                }
                let label = "soak \(n) \(kind.rawValue) \(hostname)"
                let i = ledger.add(SoakBuild(label: label, kind: kind, hostname: hostname))
                do {
                    let r = try await client.soakSubmit(manifest: SoakManifests.manifest(hostname: hostname, kind: kind, hang: hang),
                                                        label: label,
                                                        stageTimeoutMS: kind == .timeout ? Self.buildStageTimeoutMS : hang ? 20_000 : 0)
                    ledger.accepted(i, id: r.buildID, cachedJobs: Int(r.cachedJobs))
                    // A build takes a fraction of a second: a cancel within 0.6 s finds it queued, building,
                    // streaming, assembling or done; one that hangs is cancelled on its agent.
                    if kind == .cancel { cancelLater(client, r.buildID, after: hang ? rng.between(0, 4) : rng.between(0, 0.6)) }
                } catch ClientError.refused(_, let message) {
                    ledger.submitEnded(i, "refused", message)
                } catch {
                    // No answer: the build may exist (the final count looks for its label).
                    ledger.submitEnded(i, "unknown", "\(error)")
                }
            }
            await soakPause(rng.between(0.5, 3)) { ledger.stopping }
        }
    }

    /// Cancels the build after `after` seconds, asking again until answered.
    func cancelLater(_ client: SchedulerClient, _ id: String, after: Double) {
        let task = Task {
            await soakPause(after) { false }
            ledger.cancelSent(id)
            let deadline = ContinuousClock.now + .seconds(90)
            while ContinuousClock.now < deadline {
                let sent = ContinuousClock.now
                do {
                    let state = try await client.soakCancel(id)
                    ledger.cancelReplied(id, state)
                    ledger.observe(id, state, sent: sent, received: .now, source: "the cancel's answer")
                    return
                } catch ClientError.refused(_, let message) {
                    ledger.violation("the cancel of its own build \(id) was refused: \(message)")
                    return
                } catch {
                    await soakPause(1) { false }
                }
            }
        }
        cancelTasks.withLock { $0.append(task) }
    }

    // MARK: Watching

    /// Follows every build's state as an admin: the recent ones each second,
    /// unfinished ones the list left out, and now and then finished ones
    /// again (a finished build must never change).
    func track(_ admin: SchedulerClient) async {
        var rng = SplitMix64(seed: settings.seed &+ 4)
        var round = 0
        while !Task.isCancelled {
            round += 1
            var listed = Set<String>()
            let sent = ContinuousClock.now
            if let list = try? await admin.soakStatus(limit: 100) {
                let received = ContinuousClock.now
                for s in list {
                    listed.insert(s.buildID)
                    ledger.observe(s.buildID, s.state, failure: s.failure, sent: sent, received: received, source: "the status list")
                    ledger.sawAttempts(s.jobs.filter { $0.onAgent && $0.attemptID != 0 }.map(\.attemptID))
                }
            }
            var again = Array(ledger.unsettled().filter { !listed.contains($0) }.prefix(20))
            if round % 5 == 0 { again += ledger.settledSample(8, using: &rng) }
            for id in again {
                let sent = ContinuousClock.now
                if let s = try? await admin.soakStatus(id).first {
                    ledger.observe(id, s.state, failure: s.failure, sent: sent, received: .now, source: "its status")
                }
            }
            try? await Task.sleep(for: .seconds(1))
        }
    }

    /// Fetches each succeeded build's archive: its hostname must be the
    /// build's own, and the hostile marker nowhere in it.
    func verify(_ admin: SchedulerClient) async {
        let dir = "\(farm.dir)/verify"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        while !Task.isCancelled {
            guard let id = ledger.nextToVerify(), let build = ledger.build(id) else {
                try? await Task.sleep(for: .milliseconds(500))
                continue
            }
            verifying.withLock { $0 = true }
            defer { verifying.withLock { $0 = false } }
            let path = "\(dir)/\(id).tar"
            var failure = "not fetched"
            for _ in 0..<6 {
                do {
                    try await admin.fetch(id, artifact: "tree.tar", to: path)
                    failure = ""
                    break
                } catch {
                    failure = "fetch failed: \(error)"
                    try? await Task.sleep(for: .seconds(2))
                }
            }
            if failure.isEmpty {
                let hostname = (try? await runChild("/bin/tar", ["-xOf", path, "./etc/hostname"]).output) ?? ""
                let bytes = (try? Data(contentsOf: URL(fileURLWithPath: path))) ?? Data()
                if bytes.range(of: Data(marker.utf8)) != nil {
                    failure = "the archive holds the hostile marker"
                } else if hostname != build.hostname + "\n" {
                    failure = "its /etc/hostname is \(hostname.debugDescription), not \(build.hostname)"
                }
            }
            ledger.verified(id, failure.isEmpty ? "ok" : failure)
            try? FileManager.default.removeItem(atPath: path)
        }
    }

    /// Every 2 s: the scheduler's and agents' memory, daemons that died on
    /// their own (recorded and started again); every 6 s the scheduler's
    /// metrics; every 4 s the disk.
    func monitor() async {
        var tick = 0
        while !Task.isCancelled {
            tick += 1
            for d in daemons {
                if let status = d.reapIfExited() {
                    ledger.state.withLock { $0.crashes.append("\(d.name) exited by itself (status \(status)) at \(Int(ledger.elapsed)) s:\n\(d.tail(15))") }
                    await start(d)
                }
            }
            sampleMemory()
            if tick % 3 == 0 { await scrapeMetrics() }
            if tick % 2 == 0 { sampleDisk() }
            try? await Task.sleep(for: .seconds(2))
        }
        sampleDisk()
    }

    func sampleMemory() {
        if let pid = scheduler.pid {
            let m = InboundFloodTests.memory(pid)
            if m.rss > 0 {
                ledger.state.withLock { s in
                    s.schedulerRSS.add(m.rss, cap: settings.rssCapBytes)
                    s.schedulerHWM = max(s.schedulerHWM, m.peak)
                    let minute = Int(ledger.elapsed / 60)
                    s.schedulerRSSByMinute[minute] = max(s.schedulerRSSByMinute[minute] ?? 0, m.rss)
                }
            }
        }
        for a in agents {
            guard let pid = a.pid else { continue }
            let m = InboundFloodTests.memory(pid)
            if m.rss > 0 { ledger.state.withLock { $0.agentRSS.add(m.rss) } }
        }
    }

    func sampleDisk() {
        let dir = farm.dir
        var samples: [(String, UInt64, UInt64?, UInt64, Int)] = []  // name, value, cap, largest object, objects
        for name in ["scheduler", "agent-a", "agent-b"] {
            let store = "\(dir)/\(name)/store"
            let objects = SoakDisk.objects(store)
            samples.append(("\(name) store", objects.total, settings.storeCapBytes, objects.largest, objects.count))
            let state = SoakDisk.usage("\(dir)/\(name)", excluding: [store]).allocated
            samples.append(("\(name) state", state, name == "scheduler" ? settings.stateCapBytes : settings.agentStateCapBytes, 0, 0))
        }
        samples.append(("farm", SoakDisk.usage(dir).allocated, nil, 0, 0))
        ledger.state.withLock { s in
            for (name, value, cap, largest, count) in samples {
                s.disk[name, default: SoakPeak()].add(value, cap: cap)
                if name.hasSuffix("store") {
                    s.largestObject[name] = max(s.largestObject[name] ?? 0, largest)
                    s.objectCount[name] = max(s.objectCount[name] ?? 0, count)
                }
            }
        }
    }

    /// `kiln_dropped_messages_total` of the running scheduler: every message
    /// refused or dropped, counted per start (a restart starts from 0).
    func scrapeMetrics() async {
        let start = scheduler.starts
        guard scheduler.pid != nil,
              let out = try? await runChild("/usr/bin/curl", ["-s", "--max-time", "2", "http://127.0.0.1:\(metricsPort)/metrics"]),
              out.status == 0 else { return }
        for line in out.output.split(separator: "\n") where line.hasPrefix("kiln_dropped_messages_total") {
            if let v = line.split(separator: " ").last.flatMap({ Double($0) }) {
                ledger.state.withLock { $0.droppedByIncarnation[start] = max($0.droppedByIncarnation[start] ?? 0, UInt64(v)) }
            }
        }
    }

    // MARK: Chaos

    /// SIGKILLs a random daemon every 0.5–1.5 × `killEverySeconds`, and
    /// starts it again after 0.5–5 s.
    func chaos() async {
        var rng = SplitMix64(seed: settings.seed &+ 3)
        while !ledger.stopping {
            await soakPause(settings.killEverySeconds * rng.between(0.5, 1.5)) { ledger.stopping }
            if ledger.stopping { break }
            let roll = rng.unit()
            let target = roll < 1.0 / 3 ? scheduler : roll < 2.0 / 3 ? agents[0] : agents[1]
            if target === scheduler {
                await scrapeMetrics()
                sampleMemory()
            }
            let at = ledger.elapsed
            switch await target.kill() {
            case .killed: break
            case .notRunning: continue  // being started again
            case .hadExited(let status):
                ledger.state.withLock { $0.crashes.append("\(target.name) exited by itself (status \(status)) at \(Int(at)) s:\n\(target.tail(15))") }
                await start(target)
                continue
            }
            let down = rng.between(0.5, 5)
            await soakPause(down) { false }
            let restart = ContinuousClock.now
            await start(target)
            let downtime = down + SoakLedger.seconds(ContinuousClock.now - restart)
            ledger.state.withLock { $0.kills.append((target.name, at, downtime)) }
        }
    }

    // MARK: - The end

    func finish(admin: SchedulerClient?, setupFailure: String?, hostile: SoakHostile? = nil) async -> SoakReport {
        var facts = SoakFacts()
        facts.setupFailure = setupFailure
        if let admin, setupFailure == nil {
            await finalCount(admin, into: &facts)
        }
        facts.storeList = (try? await farm.kiln(["store", "list"] + farm.stateOptions).output) ?? ""
        let hostileList = try? await farm.kiln(["store", "list", "--agent", "\(farm.dir)/\(SoakHostile.keyName).pub"] + farm.stateOptions)
        if let hostileList, hostileList.status == 0 {
            facts.hostileStoreRows = hostileList.output.split(separator: "\n").dropFirst().filter { !$0.isEmpty }.map(String.init)
        } else {
            facts.hostileStoreError = hostileList.map { "exit \($0.status): \($0.output)" } ?? "did not run"
        }
        let scan = try? await runChild("/bin/grep", ["-r", "-l", "-a", "-F", marker, "\(farm.dir)/scheduler", "\(farm.dir)/agent-a",
                                                     "\(farm.dir)/agent-b"], mergeErrors: true)
        facts.markerFiles = scan.map { $0.status == 0 ? $0.output.split(separator: "\n").map(String.init) : [] } ?? ["grep did not run"]
        facts.hostileWelcomes = hostile?.welcomes ?? 0
        facts.hostileAssigns = hostile?.assigns ?? 0
        facts.hostileDisconnects = hostile?.disconnects ?? 0
        facts.refusedInLogs = Self.refusals(in: scheduler.log())
        facts.keys = ["agent-a", "agent-b", SoakHostile.keyName].reduce(into: [:]) { keys, name in
            keys[name] = try? CurveKeyPair.loadPublicKey("\(farm.dir)/\(name).pub")
        }
        let pids = Set(daemons.compactMap(\.pid))
        facts.leftoverProcesses = farm.markedProcesses(farm.dir).filter { !pids.contains($0) }.count
        facts.leftoverMounts = farm.mountsInFarm.count
        await admin?.close()

        let report = SoakReport(run: self, ledger: ledger.state.withLock { $0 }, facts: facts)
        report.write(to: settings.reportPath)
        print(report.table)
        teardown(keep: settings.keep || !report.ok)
        return report
    }

    /// The scheduler's own account at the end: each accepted build's status,
    /// and every build in its database (for duplicates and for builds whose
    /// submit was never answered).
    func finalCount(_ admin: SchedulerClient, into facts: inout SoakFacts) async {
        for b in ledger.builds {
            guard let id = b.id else { continue }
            var answer: Result<Kiln_V1_BuildStatus?, Error> = .success(nil)
            for _ in 0..<3 {
                let sent = ContinuousClock.now
                do {
                    let s = try await admin.soakStatus(id).first
                    answer = .success(s)
                    if let s { ledger.observe(id, s.state, failure: s.failure, sent: sent, received: .now, source: "the final status") }
                    break
                } catch {
                    answer = .failure(error)
                    try? await Task.sleep(for: .seconds(1))
                }
            }
            switch answer {
            case .success(let s?): facts.finalStates[id] = s.state
            case .success(nil): facts.lost.append("\(b.label) (\(id)): accepted, but the scheduler shows no such build")
            case .failure(let e): facts.lost.append("\(b.label) (\(id)): accepted, but the final status failed: \(e)")
            }
        }
        // The database, read-only beside the running scheduler (docs/operating.md).
        let read = try? await runChild("/usr/bin/env", ["python3", "-c", """
            import json, sqlite3, sys
            db = sqlite3.connect('file:' + sys.argv[1] + '?mode=ro', uri=True)
            print(json.dumps(db.execute('SELECT id, label, state FROM builds').fetchall()))
            """, "\(farm.dir)/scheduler/scheduler.sqlite"])
        if let read, read.status == 0, let rows = try? JSONSerialization.jsonObject(with: Data(read.output.utf8)) as? [[Any]] {
            facts.databaseRows = rows.compactMap { r in
                guard r.count == 3, let id = r[0] as? String, let label = r[1] as? String, let state = r[2] as? Int else { return nil }
                return (id: id, label: label, state: Kiln_V1_BuildState(rawValue: state) ?? .unspecified)
            }
            facts.databaseRead = true
        } else {
            facts.databaseError = read.map { "python3 exit \($0.status): \($0.errors)" } ?? "python3 did not run"
        }
    }

    /// Warnings the scheduler logged about refused or dropped messages, and
    /// the messages they stand for (a warning says how many it left out).
    static func refusals(in log: String) -> (warnings: Int, messages: Int) {
        var warnings = 0, messages = 0
        for line in log.split(separator: "\n") where line.contains("refused") || line.contains("dropped") {
            guard !line.contains("kiln scheduler:") else { continue }
            warnings += 1
            messages += 1
            for pattern in ["(and ", "("] {
                guard let r = line.range(of: pattern, options: .backwards) else { continue }
                let digits = line[r.upperBound...].prefix { $0.isNumber }
                if let n = Int(digits), line[r.upperBound...].dropFirst(digits.count).hasPrefix(" more") {
                    messages += n
                    break
                }
            }
        }
        return (warnings, messages)
    }

    func teardown(keep: Bool) {
        for d in daemons {
            if let pid = d.pid { kill(pid, SIGKILL) }
        }
        for pid in farm.markedProcesses(farm.dir) { kill(pid, SIGKILL) }
        for mount in farm.mountsInFarm.sorted(by: >) { _ = try? runBlocking(["umount", "-l", mount]) }
        if keep {
            print("kiln soak: the farm's directory is kept: \(farm.dir)")
        } else {
            try? FileManager.default.removeItem(atPath: farm.dir)
        }
    }
}

extension SoakDaemon {
    /// Started by the soak and not (yet) exited.
    var isRunningNow: Bool { pid != nil }
}
