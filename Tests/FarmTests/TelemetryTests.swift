import Foundation
import KilnTestSupport
import Scheduler
import Testing

/// The farm's numbers, checked against what ran: `ops/farm-load` drives a
/// real scheduler and two agents (processes, CURVE over loopback) with a
/// stream of builds; `/metrics` is read with the Prometheus project's own
/// parser (prometheus_client), `kiln top --once --json` against `kiln status`
/// and `kiln agents`, the dashboard as headless Chromium renders it, and
/// `kiln report` before and after the scheduler is killed and restarted.
@Suite(.serialized, .tags(.farm), .tier(.quick, .farm)) struct TelemetryTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path
    static let fixtures = "\(root)/Tests/FarmTests/Fixtures"

    /// A farm made by `ops/farm-load up` in a directory of its own.
    struct Farm {
        let dir: String
        let port: Int
        let httpPort: Int
        var env: [String: String] {
            var e = ["KILN": FarmHarness.kiln]
            if let text = try? String(contentsOfFile: "\(dir)/farm.env", encoding: .utf8) {
                for line in text.split(separator: "\n") {
                    let kv = line.split(separator: "=", maxSplits: 1).map(String.init)
                    if kv.count == 2 { e[kv[0]] = kv[1] }
                }
            }
            return e
        }

        init() throws {
            dir = "/var/tmp/kiln-telemetry-\(UUID().uuidString.prefix(8).lowercased())"
            port = try FarmHarness.freePortPair()
            var http = 0
            for _ in 0..<50 {
                let p = Int.random(in: 20_000..<32_000)
                if FarmHarness.canBind(p) && FarmHarness.canBind(p + 1) && FarmHarness.canBind(p + 2) && abs(p - port) > 3 {
                    http = p
                    break
                }
            }
            httpPort = http
        }

        func load(_ command: String, _ extra: [String] = [], env more: [String: String] = [:]) async throws -> ChildOutput {
            try await runChild("\(TelemetryTests.root)/ops/farm-load", [command, "--dir", dir, "--port", "\(port)",
                                                                        "--metrics-port", "\(httpPort)"] + extra,
                               environment: env.merging(more) { $1 }, mergeErrors: true)
        }

        func kiln(_ args: String...) async throws -> String {
            let r = try await runChild(FarmHarness.kiln, args, environment: env)
            #expect(r.status == 0, "kiln \(args.joined(separator: " ")): \(r.errors)")
            return r.output
        }

        func get(_ path: String, port: Int? = nil) async throws -> (status: Int, body: String) {
            let file = "\(dir)/http-body"
            let r = try await runChild("/usr/bin/curl", ["-s", "-o", file, "-w", "%{http_code}",
                                                         "http://127.0.0.1:\(port ?? httpPort)\(path)"])
            return (Int(r.output) ?? 0, (try? String(contentsOfFile: file, encoding: .utf8)) ?? "")
        }

        func cleanUp() async {
            _ = try? await load("down")
            try? FileManager.default.removeItem(atPath: dir)
        }
    }

    static func json(_ text: String) throws -> Any {
        try JSONSerialization.jsonObject(with: Data(text.utf8))
    }

    /// Prometheus samples as the reference parser reads them.
    struct Samples {
        let all: [(name: String, labels: [String: String], value: Double)]
        let types: [String: String]
        init(_ exposition: String, dir: String) async throws {
            let file = "\(dir)/metrics-\(UUID().uuidString.prefix(6)).txt"
            try exposition.write(toFile: file, atomically: true, encoding: .utf8)
            let r = try await runChild("/usr/bin/env", ["python3", "\(TelemetryTests.fixtures)/parse-metrics.py", file])
            guard r.status == 0, let doc = try TelemetryTests.json(r.output) as? [String: Any],
                  let list = doc["samples"] as? [[Any]] else {
                throw ParseFailure(text: r.errors)
            }
            all = list.map { ($0[0] as! String, $0[1] as! [String: String], ($0[2] as! NSNumber).doubleValue) }
            types = doc["types"] as? [String: String] ?? [:]
        }
        /// Sum of the samples named `name` whose labels include `match`.
        func sum(_ name: String, _ match: [String: String] = [:]) -> Double {
            all.filter { s in s.name == name && match.allSatisfy { k, v in s.labels[k] == v } }.reduce(0) { $0 + $1.value }
        }
    }

    struct ParseFailure: Error, CustomStringConvertible {
        let text: String
        var description: String { "the exposition did not parse: \(text)" }
    }

    @Test("a stream of builds: /metrics, kiln top, the dashboard and kiln report agree with what ran, also after a restart")
    func farmNumbers() async throws {
        let farm = try Farm()
        defer { Task { await farm.cleanUp() } }
        // Every job takes at least 1.5 s, so builds queue and run while the test looks.
        let up = try await farm.load("up", env: ["KILN_TEST_JOB_DELAY_MS": "1500"])
        try #require(up.status == 0, "\(up.output)")
        let builds = 12
        async let run = farm.load("run", ["--builds", "\(builds)", "--interval", "0.2"])

        // While it runs: a build top calls running was not finished before and exists after.
        var sawRunning = false
        for _ in 0..<100 where !sawRunning {
            try await Task.sleep(for: .milliseconds(300))
            let before = try await farm.kiln("status", "--json")
            let top = try TelemetryJSON.decode(FarmSnapshot.self, from: Array(try await farm.kiln("top", "--once", "--json").utf8))
            guard !top.running.isEmpty else { continue }
            let after = try await farm.kiln("status", "--json")
            for b in top.running {
                #expect(!before.contains("\"\(b.buildId)\"") || Self.state(of: b.buildId, in: before).map { !$0.hasSuffix("SUCCEEDED") && !$0.hasSuffix("FAILED") } == true,
                        "top shows \(b.buildId) running after status said it finished")
                #expect(after.contains("\"\(b.buildId)\""))
                #expect((0...1).contains(b.progress) && b.jobsTotal == 2 && !b.current.isEmpty, "\(b)")
                #expect(b.imageType == "tar" && b.distro == "debian-12")
                if b.current.contains(" on agent-") { #expect(b.state == "running", "\(b)") }
            }
            let busy = top.agents.reduce(0) { $0 + $1.slotsInUse }
            #expect(busy <= 2 && top.queues.first { $0.arch == "x86_64" }?.slotsTotal == 2)
            sawRunning = true
        }
        #expect(sawRunning, "kiln top never showed a running build")
        let finished = try await run
        try #require(finished.status == 0, "\(finished.output)")

        // What ran, per ops/farm-load and the scheduler's own status.
        let outcomes = try #require(try Self.json(String(contentsOfFile: "\(farm.dir)/builds.json", encoding: .utf8)) as? [[String: Any]])
        let succeeded = outcomes.filter { $0["state"] as? String == "succeeded" }.count
        let failed = outcomes.filter { $0["state"] as? String == "failed" }.count
        #expect(outcomes.count == builds && succeeded + failed == builds && failed == 2)
        let status = try #require(try Self.json(try await farm.kiln("status", "--json")) as? [[String: Any]])
        let treeJobs = status.filter { ($0["label"] as? String)?.hasPrefix("load-") == true }
            .flatMap { ($0["jobs"] as? [[String: Any]] ?? []).filter { $0["onAgent"] as? Bool == true } }
        let cached = treeJobs.filter { $0["state"] as? String == "JOB_STATE_CACHED" }.count
        let built = treeJobs.filter { $0["state"] as? String == "JOB_STATE_SUCCEEDED" }.count
        #expect(cached > 0 && built > 0 && cached + built + 2 == builds, "cached \(cached), built \(built)")

        // /metrics: parses, and its counters are those builds.
        let (code, text) = try await farm.get("/metrics")
        #expect(code == 200)
        let m = try await Samples(text, dir: farm.dir)
        #expect(m.types["kiln_builds"] == "counter" && m.types["kiln_stage_duration_seconds"] == "histogram", "\(m.types)")
        #expect(m.sum("kiln_builds_submitted_total", ["arch": "x86_64", "image_type": "tar"]) == Double(builds))
        #expect(m.sum("kiln_builds_total", ["outcome": "succeeded", "image_type": "tar"]) == Double(succeeded))
        #expect(m.sum("kiln_builds_total", ["outcome": "failed"]) == Double(failed))
        #expect(m.sum("kiln_build_duration_seconds_count") == Double(succeeded))
        #expect(m.sum("kiln_tree_cache_hits_total", ["arch": "x86_64"]) == Double(cached))
        #expect(m.sum("kiln_tree_cache_misses_total", ["arch": "x86_64"]) == Double(built))
        #expect(m.sum("kiln_jobs_total", ["kind": "tree", "outcome": "failed"]) == 2)
        #expect(m.sum("kiln_jobs_total", ["kind": "assembly", "outcome": "succeeded"]) == Double(succeeded))
        #expect(m.sum("kiln_job_attempts_total", ["mode": "native", "outcome": "succeeded"]) == Double(built))
        // An agent frees its slot before the scheduler hears the job is over: no Assign finds it busy.
        #expect(m.sum("kiln_job_attempts_total", ["outcome": "infrastructure"]) == 0)
        #expect(m.sum("kiln_jobs_total", ["kind": "tree", "outcome": "cached"]) == Double(cached))
        #expect(m.sum("kiln_job_duration_seconds_count") == Double(built))
        #expect(m.sum("kiln_stage_duration_seconds_count", ["stage": "org.osbuild.hostname", "mode": "native"]) == Double(built))
        #expect(m.sum("kiln_stage_duration_seconds_count", ["stage": "org.osbuild.tar", "mode": "scheduler"]) >= 1)
        #expect(m.sum("kiln_assembly_duration_seconds_count", ["image_type": "tar"]) == Double(succeeded))
        // Each built tree carries 256 KiB that does not compress.
        #expect(m.sum("kiln_streamed_bytes_total", ["arch": "x86_64"]) >= Double(built * (256 << 10)))
        #expect(m.sum("kiln_tree_cache_saved_bytes_total") >= Double(cached * (256 << 10)))
        #expect(m.sum("kiln_agents", ["arch": "x86_64", "mode": "native", "state": "online"]) == 2)
        #expect(m.sum("kiln_queue_depth", ["arch": "x86_64"]) == 0 && m.sum("kiln_slots") == 2 && m.sum("kiln_slots_busy") == 0)
        #expect(!m.all.contains { $0.labels.values.contains { $0.contains("-") && $0.count > 12 } }, "a build or job ID in a label")
        var agentJobs = 0.0, agentFailed = 0.0
        for i in 1...2 {
            let (c, t) = try await farm.get("/metrics", port: farm.httpPort + i)
            #expect(c == 200)
            let a = try await Samples(t, dir: farm.dir)
            agentJobs += a.sum("kiln_agent_jobs_total", ["outcome": "succeeded", "mode": "native"])
            agentFailed += a.sum("kiln_agent_jobs_total", ["outcome": "failed"])
            #expect(a.sum("kiln_agent_slots") == 1 && a.sum("kiln_agent_free_disk_bytes") > 0 && a.sum("kiln_agent_connected") == 1)
        }
        #expect(agentJobs == Double(built) && agentFailed == 2)

        // kiln top agrees with status and agents.
        let top = try TelemetryJSON.decode(FarmSnapshot.self, from: Array(try await farm.kiln("top", "--once", "--json").utf8))
        let agents = try #require(try Self.json(try await farm.kiln("agents", "--json")) as? [[String: Any]])
        #expect(top.agents.map(\.id) == agents.compactMap { $0["agentId"] as? String }.sorted())
        #expect(top.agents.allSatisfy { $0.state == "online" && $0.slotsInUse == 0 && $0.slots == 1 })
        #expect(top.running.isEmpty)
        let hour = try #require(top.windows.first { $0.minutes == 60 })
        #expect(hour.buildsSucceeded == succeeded && hour.buildsFailed == failed)
        #expect(hour.treeCacheHits == cached && hour.treeCacheMisses == built)
        #expect(hour.imageTypes.first { $0.imageType == "tar" }?.builds == succeeded)
        let failedIDs = Set(outcomes.filter { $0["state"] as? String == "failed" }.compactMap { $0["build"] as? String })
        #expect(Set(top.failures.map(\.buildId)) == failedIDs && top.failures.allSatisfy { $0.failure.contains("Mars/Olympus") })

        // The dashboard, rendered by Chromium, shows the same numbers.
        let dom = try await runChild("/usr/bin/chromium", [
            "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=8000", "--dump-dom",
            "http://127.0.0.1:\(farm.httpPort)/",
        ])
        try dom.output.write(toFile: "\(farm.dir)/dashboard.html", atomically: true, encoding: .utf8)
        let read = try await runChild("/usr/bin/env", ["python3", "\(Self.fixtures)/dashboard-values.py", "\(farm.dir)/dashboard.html"])
        let page = try #require(try Self.json(read.output) as? [String: Any], "\(read.errors)")
        let v = try #require(page["values"] as? [String: String])
        let links = page["links"] as? [String: String] ?? [:]
        #expect((page["loaded"] as? Int ?? 0) >= 1, "the page never rendered a snapshot")
        let snap = try TelemetryJSON.decode(FarmSnapshot.self, from: Array(try await farm.kiln("top", "--once", "--json").utf8))
        #expect(v["scheduler.epoch"] == "\(snap.scheduler.epoch)" && v["count.agents"] == "\(snap.agents.count)")
        #expect(v["count.running"] == "0" && v["count.failures"] == "\(snap.failures.count)")
        for a in snap.agents {
            #expect(v["agent.\(a.id).state"] == a.state && v["agent.\(a.id).slots"] == "\(a.slots)")
            #expect(v["agent.\(a.id).slots_in_use"] == "\(a.slotsInUse)" && v["agent.\(a.id).jobs"] == "\(a.jobs.count)")
        }
        for q in snap.queues {
            #expect(v["queue.\(q.arch).depth"] == "\(q.depth)" && v["queue.\(q.arch).agents_online"] == "\(q.agentsOnline)")
            #expect(v["queue.\(q.arch).slots_total"] == "\(q.slotsTotal)" && v["queue.\(q.arch).slots_busy"] == "\(q.slotsBusy)")
        }
        for w in snap.windows {
            for (key, value) in [("builds_succeeded", w.buildsSucceeded), ("builds_failed", w.buildsFailed),
                                 ("tree_cache_hits", w.treeCacheHits), ("tree_cache_misses", w.treeCacheMisses)] {
                // A minute window can lose builds between the two reads; 15 and 60 cannot.
                if w.minutes > 1 { #expect(v["window.\(w.minutes).\(key)"] == "\(value)", "window \(w.minutes) \(key)") }
            }
            if w.minutes > 1 { #expect(v["window.\(w.minutes).streamed_bytes"] == "\(w.streamedBytes)") }
        }
        for f in snap.failures {
            #expect(v["failure.\(f.buildId)"] != nil)
            let link = try #require(links["log.\(f.buildId)"])
            let (logCode, log) = try await farm.get("/" + link)
            #expect(logCode == 200 && log.contains("Mars/Olympus"), "\(link): \(logCode)")
        }
        #expect(try await farm.get("/api/log?build=no-such-build").status == 404)
        #expect(try await farm.get("/api/report?since=soon").status == 400)
        #expect(try await farm.get("/nothing-here").status == 404)

        // kiln report: history, the same after the scheduler is killed and restarted.
        let before = try TelemetryJSON.decode(FarmReport.self, from: Array(try await farm.kiln("report", "--since", "1h", "--json").utf8))
        #expect(before.totals.builds == builds && before.totals.succeeded == succeeded && before.totals.failed == failed)
        #expect(before.cache.treeCacheHits == cached && before.cache.treeJobs == cached + built)
        #expect(before.cache.savedBytes >= UInt64(cached * (256 << 10)))
        #expect(before.slowestStages.contains { $0.stage == "org.osbuild.hostname" && $0.runs == built })
        #expect(before.queueWait.first?.arch == "x86_64")
        let pid = try #require(Int32(try String(contentsOfFile: "\(farm.dir)/scheduler.pid", encoding: .utf8)))
        kill(pid, SIGKILL)
        try #require(await waitFor(.seconds(30)) { processEnded(pid) }, "the killed scheduler (pid \(pid)) is gone")
        let again = try await farm.load("up")
        try #require(again.status == 0, "\(again.output)")
        var after = try TelemetryJSON.decode(FarmReport.self, from: Array(try await farm.kiln("report", "--since", "1h", "--json").utf8))
        after.untilUnixMs = before.untilUnixMs
        #expect(after.sinceUnixMs - before.sinceUnixMs < 120_000)
        after.sinceUnixMs = before.sinceUnixMs
        #expect(after == before)
        let restarted = try TelemetryJSON.decode(FarmSnapshot.self, from: Array(try await farm.kiln("top", "--once", "--json").utf8))
        #expect(restarted.scheduler.epoch == top.scheduler.epoch + 1)
        #expect(restarted.windows.first { $0.minutes == 60 }?.buildsSucceeded == succeeded)
        let printed = try await farm.kiln("report", "--since", "1h")
        #expect(printed.contains("SLOWEST STAGES") && printed.contains("org.osbuild.hostname"))

        // Bad input names the option and exits 2.
        let bad = try await runChild(FarmHarness.kiln, ["report", "--since", "yesterday"], environment: farm.env)
        #expect(bad.status == 2 && bad.errors.contains("--since yesterday"), "\(bad.errors)")
        let badHTTP = try await runChild(FarmHarness.kiln, ["scheduler", "--bind", "tcp://127.0.0.1:1", "--key", "\(farm.dir)/scheduler.key",
                                                            "--allow", "\(farm.dir)/allow", "--state", "\(farm.dir)/other",
                                                            "--metrics", "everywhere"])
        #expect(badHTTP.status == 2 && badHTTP.errors.contains("--metrics everywhere"), "\(badHTTP.errors)")
        let both = try await runChild(FarmHarness.kiln, ["scheduler", "--bind", "tcp://127.0.0.1:1", "--key", "\(farm.dir)/scheduler.key",
                                                         "--allow", "\(farm.dir)/allow", "--state", "\(farm.dir)/other",
                                                         "--metrics", ":1", "--no-telemetry"])
        #expect(both.status == 2 && both.errors.contains("--no-telemetry"), "\(both.errors)")
    }

    @Test("a scheduler config file: its keys are flags, a flag wins, relative paths are the file's, mistakes name file and line")
    func configFile() async throws {
        let farm = try FarmHarness()
        defer { farm.cleanUp() }
        let http = try FarmHarness.freePortPair()
        let conf = "\(farm.dir)/scheduler.toml"
        try """
            # a scheduler on loopback
            bind = "\(farm.endpoint)"
            key = "scheduler.key"      # relative: next to this file
            allow = "allow"
            state = "\(farm.dir)/state"
            store = "\(farm.dir)/store"
            metrics = "127.0.0.1:1"    # the flag below wins
            lease = 12.5
            max-attempts = 2
            """.write(toFile: conf, atomically: true, encoding: .utf8)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: FarmHarness.kiln)
        p.arguments = ["scheduler", "--config", conf, "--metrics", "127.0.0.1:\(http)"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        defer { kill(p.processIdentifier, SIGKILL); p.waitUntilExit() }
        let served = await farm.eventually(.seconds(30)) {
            let r = try? await runChild("/usr/bin/curl", ["-s", "http://127.0.0.1:\(http)/metrics"])
            return r?.output.contains("kiln_slots") == true
        }
        #expect(served, "the scheduler from the config file did not serve /metrics on the flag's port")
        let c = try await farm.client()
        #expect(try await c.agents().isEmpty)
        await c.close()

        for (text, expected) in [
            ("bind = \"tcp://127.0.0.1:1\"\nkey = \"k\"\nallow = \"a\"\nwhatever = 3\n", "scheduler.toml:4: unknown key \"whatever\""),
            ("bind = \"tcp://127.0.0.1:1\"\nlease = \"long\"\n", "scheduler.toml:2: lease must be a number"),
            ("bind = [\n", "scheduler.toml:1: not valid TOML"),
        ] {
            try text.write(toFile: conf, atomically: true, encoding: .utf8)
            let r = try await runChild(FarmHarness.kiln, ["scheduler", "--config", conf])
            #expect(r.status == 2 && r.errors.contains(expected), "\(r.errors)")
        }
        let missing = try await runChild(FarmHarness.kiln, ["agent", "--config", "\(farm.dir)/nope.toml"])
        #expect(missing.status == 2 && missing.errors.contains("nope.toml: no such file"), "\(missing.errors)")
    }

    static func state(of build: String, in statusJSON: String) -> String? {
        guard let list = try? json(statusJSON) as? [[String: Any]] else { return nil }
        return list.first { $0["buildId"] as? String == build }?["state"] as? String
    }

    @Test("look-back windows and percentiles")
    func windowsAndPercentiles() {
        #expect(Since.parse("90s") == 90_000 && Since.parse("30m") == 1_800_000 && Since.parse("24h") == 86_400_000)
        #expect(Since.parse("7d") == 604_800_000 && Since.parse("1.5h") == 5_400_000)
        #expect(Since.parse("") == nil && Since.parse("h") == nil && Since.parse("-1h") == nil && Since.parse("24") == nil)
        #expect(TelemetryJSON.percentile([], 0.5) == nil)
        #expect(TelemetryJSON.percentile([3, 1, 2], 0.5) == 2 && TelemetryJSON.percentile([5], 0.95) == 5)
        #expect(TelemetryJSON.percentile((1...100).map(Double.init), 0.95) == 95)
    }
}
