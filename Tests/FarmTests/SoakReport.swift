import Foundation
import Protocol

/// What the soak gathers at its end, beside the ledger.
struct SoakFacts {
    var setupFailure: String?
    /// Each accepted build's state in the final status.
    var finalStates: [String: Kiln_V1_BuildState] = [:]
    var lost: [String] = []
    var databaseRows: [(id: String, label: String, state: Kiln_V1_BuildState)] = []
    var databaseRead = false
    var databaseError = ""
    /// `kiln store list`, all of it and for the hostile key.
    var storeList = ""
    var hostileStoreRows: [String] = []
    var hostileStoreError: String?
    /// Files under the daemons' directories that hold the hostile marker.
    var markerFiles: [String] = []
    var hostileWelcomes = 0
    var hostileAssigns = 0
    var hostileDisconnects = 0
    var refusedInLogs = (warnings: 0, messages: 0)
    var keys: [String: String] = [:]
    var leftoverProcesses = 0
    var leftoverMounts = 0
}

/// The soak's verdict: checks and figures, as a table and as JSON with
/// stable keys (`ops/soak` reads `ok` and `failed_checks`).
struct SoakReport {
    struct Check {
        let name: String
        let ok: Bool
        let detail: String
    }

    var checks: [Check] = []
    var json: [String: Any] = [:]
    var table = ""
    var ok: Bool { checks.allSatisfy(\.ok) }

    init(run: SoakRun, ledger: SoakLedger.State, facts: SoakFacts) {
        let settings = run.settings
        let builds = ledger.builds
        let accepted = builds.filter { $0.id != nil }
        func final(_ b: SoakBuild) -> Kiln_V1_BuildState? { b.id.flatMap { facts.finalStates[$0] } ?? b.terminal }
        func count(_ state: Kiln_V1_BuildState, _ among: [SoakBuild] = accepted) -> Int { among.filter { final($0) == state }.count }

        // 1. Every accepted submission reaches exactly one terminal state; IDs unique; nothing extra.
        var lost = facts.lost
        for b in accepted where facts.finalStates[b.id!].map({ !$0.isTerminal }) ?? false {
            lost.append("\(b.label) (\(b.id!)): still \(facts.finalStates[b.id!]!.soakName) at the end")
        }
        var duplicated = ledger.idViolations
        var unexplained: [String] = []
        var unansweredFound = 0
        if facts.databaseRead {
            let byLabel = Dictionary(grouping: facts.databaseRows, by: { $0.label })
            for (label, rows) in byLabel where rows.count > 1 {
                duplicated.append("\(rows.count) builds labelled \(label.debugDescription): \(rows.map { $0.id }.joined(separator: ", "))")
            }
            let ids = Set(facts.databaseRows.map { $0.id })
            for b in accepted where !ids.contains(b.id!) { lost.append("\(b.label) (\(b.id!)): accepted, but not in scheduler.sqlite") }
            let acceptedIDs = Set(accepted.compactMap(\.id))
            let unanswered = Set(builds.filter { $0.submit == "unknown" }.map(\.label))
            for row in facts.databaseRows where !acceptedIDs.contains(row.id) {
                if unanswered.contains(row.label) {
                    unansweredFound += 1
                    if !row.state.isTerminal {
                        lost.append("\(row.label) (\(row.id)): its submit was never answered, and it is still \(row.state.soakName)")
                    }
                } else {
                    unexplained.append("\(row.id) \(row.label.debugDescription) (\(row.state.soakName)): no submission of the soak's")
                }
            }
        }
        let accountedOK = facts.setupFailure == nil && facts.databaseRead && lost.isEmpty && duplicated.isEmpty && unexplained.isEmpty
            && ledger.buildViolations.isEmpty && !accepted.isEmpty
        checks.append(Check(name: "builds_accounted", ok: accountedOK, detail: facts.setupFailure.map { "the soak did not start: \($0)" }
            ?? (accountedOK ? "\(accepted.count) accepted, each ended once (\(facts.databaseRows.count) in scheduler.sqlite, "
                + "\(unansweredFound) of them from submits whose answer was lost); IDs unique"
                : Self.list(lost.map { "lost: \($0)" } + duplicated.map { "duplicated: \($0)" } + unexplained.map { "unexplained: \($0)" }
                            + ledger.buildViolations + (facts.databaseRead ? [] : ["scheduler.sqlite unread: \(facts.databaseError)"])
                            + (accepted.isEmpty ? ["no build was accepted"] : [])))))

        // 2. Nothing changes after its end; a cancelled build is never seen running or succeeded.
        let cancelled = count(.cancelled)
        let cancelAnswered = accepted.filter { $0.cancelReply == .cancelled }.count
        checks.append(Check(name: "no_resurrection", ok: ledger.stateViolations.isEmpty,
                            detail: ledger.stateViolations.isEmpty
                                ? "\(cancelled) cancelled (\(cancelAnswered) answered `cancelled` to a cancel); "
                                    + "no finished build later shown in another state"
                                : Self.list(ledger.stateViolations)))

        // 3. Nothing stored from the hostile key.
        let hostileKey = facts.keys[SoakHostile.keyName] ?? "(unknown)"
        let rows = facts.storeList.split(separator: "\n").dropFirst()
        let recorded = rows.filter { r in ["agent-a", "agent-b"].contains { facts.keys[$0].map { r.contains($0) } ?? false } }.count
        let noRecord = rows.filter { $0.contains("(no record)") }.count
        let markedArtifacts = builds.filter { $0.verification?.contains("marker") == true }.count
        var stored: [String] = []
        if facts.storeList.contains(hostileKey) { stored.append("`kiln store list` names the hostile key") }
        if !facts.hostileStoreRows.isEmpty { stored.append("`kiln store list --agent hostile.pub`: \(Self.list(facts.hostileStoreRows))") }
        if let e = facts.hostileStoreError { stored.append("`kiln store list --agent hostile.pub` failed: \(e)") }
        if !facts.markerFiles.isEmpty { stored.append("the hostile marker is in \(Self.list(facts.markerFiles))") }
        if markedArtifacts > 0 { stored.append("\(markedArtifacts) fetched archive(s) hold the hostile marker") }
        if facts.storeList.isEmpty { stored.append("`kiln store list` printed nothing") }
        checks.append(Check(name: "nothing_stored_from_hostile_key", ok: stored.isEmpty,
                            detail: stored.isEmpty
                                ? "`kiln store list`: \(recorded) tree(s) recorded, all by agent-a's or agent-b's key, \(noRecord) made on the "
                                    + "scheduler; none for the hostile key; its marker in no file of the scheduler or the agents"
                                : Self.list(stored)))

        // 4. The hostile key stayed a client: never welcomed or assigned, never shown or cancelling another key's build.
        let refusedOK = facts.hostileWelcomes == 0 && facts.hostileAssigns == 0 && ledger.hostileForeign.isEmpty
        checks.append(Check(name: "hostile_key_refused", ok: refusedOK,
                            detail: refusedOK
                                ? "0 Welcome, 0 Assign, \(facts.hostileDisconnects) Disconnect(s) to it; "
                                    + "\(ledger.hostile["foreign cancel refused"] ?? 0) cancel(s) of another key's build refused"
                                : Self.list(["\(facts.hostileWelcomes) Welcome(s), \(facts.hostileAssigns) Assign(s)"] + ledger.hostileForeign)))

        // 5. Stores under --store-cap. What running builds hold cannot be pruned, and a tree is pruned
        //    just after it is stored: a store may pass its cap by that much, (in-flight + 2) of its largest
        //    objects, and only now and then (in at most a tenth of the samples): a store that is not pruned
        //    stays over its cap once it has passed it.
        var storeLines: [String] = [], storeOK = true
        for name in ["scheduler store", "agent-a store", "agent-b store"] {
            let peak = ledger.disk[name] ?? SoakPeak()
            let slack = UInt64(settings.maxInFlight + 2) * (ledger.largestObject[name] ?? 0)
            let ok = peak.samples > 0 && peak.peak <= settings.storeCapBytes + slack && peak.overCap * 10 <= peak.samples
            storeOK = storeOK && ok
            storeLines.append("\(name) \(Self.mib(peak.peak)) peak (\(ledger.objectCount[name] ?? 0) objects at most), "
                              + "cap \(Self.mib(settings.storeCapBytes)) + \(Self.mib(slack)) slack; "
                              + "over the cap in \(peak.overCap) of \(peak.samples) samples")
        }
        checks.append(Check(name: "store_under_cap", ok: storeOK, detail: storeLines.joined(separator: "; ")
                            + (storeOK || run.retentionOptions ? ""
                                : " (this kiln's daemons do not prune to --store-cap: the retention work is not in it)")))

        // 6. State directories under the soak's budget.
        var stateLines: [String] = [], stateOK = true
        for (name, cap) in [("scheduler state", settings.stateCapBytes), ("agent-a state", settings.agentStateCapBytes),
                            ("agent-b state", settings.agentStateCapBytes)] {
            let peak = ledger.disk[name] ?? SoakPeak()
            let ok = peak.samples > 0 && peak.peak <= cap
            stateOK = stateOK && ok
            stateLines.append("\(name) \(Self.mib(peak.peak)) peak of \(Self.mib(cap))")
        }
        checks.append(Check(name: "state_under_cap", ok: stateOK, detail: stateLines.joined(separator: "; ") + " (without the stores)"
                            + (stateOK || run.retentionOptions ? ""
                                : "; this kiln has no --keep-artifacts: every image is kept, so the state grows with the builds")))

        // 7. Scheduler RSS.
        let rss = ledger.schedulerRSS
        let rssOK = rss.samples > 0 && rss.peak < settings.rssCapBytes && ledger.schedulerHWM < settings.rssCapBytes
        checks.append(Check(name: "scheduler_rss", ok: rssOK,
                            detail: "peak VmRSS \(Self.mb(rss.peak)) over \(rss.samples) samples, VmHWM \(Self.mb(ledger.schedulerHWM)); "
                                + "limit \(Self.mb(settings.rssCapBytes))"))

        // 8. Outcomes: what fails on purpose fails; what succeeds is its own build's tree.
        let wronglySucceeded = accepted.filter { $0.kind.failsOnPurpose && final($0) == .succeeded }
        let badArtifacts = accepted.filter { final($0) == .succeeded && $0.verification != "ok" }
        let verified = accepted.filter { $0.verification == "ok" }.count
        let outcomesOK = wronglySucceeded.isEmpty && badArtifacts.isEmpty
        checks.append(Check(name: "outcomes", ok: outcomesOK,
                            detail: outcomesOK
                                ? "every build meant to fail failed; \(verified) succeeded build(s) fetched, "
                                    + "each archive its own (hostname, no marker)"
                                : Self.list(wronglySucceeded.map { "\($0.label) succeeded but was meant to fail" }
                                            + badArtifacts.map { "\($0.label): \($0.verification ?? "its archive was never fetched")" })))

        // 9. No daemon died by itself, and each started again when asked.
        let crashes = ledger.crashes + ledger.restartFailures
        checks.append(Check(name: "no_crashes", ok: crashes.isEmpty,
                            detail: crashes.isEmpty ? "every exit was a SIGKILL of the soak's; every restart came up" : Self.list(crashes)))

        // Figures.
        let onPurpose = accepted.filter { $0.kind.failsOnPurpose && final($0) == .failed }.count
        let unexpected = accepted.filter { !$0.kind.failsOnPurpose && final($0) == .failed }
        var byKind: [String: Any] = [:]
        for kind in SoakKind.allCases {
            let these = builds.filter { $0.kind == kind }
            let ok = these.filter { $0.id != nil }
            byKind[kind.rawValue] = ["submitted": these.count, "accepted": ok.count, "succeeded": count(.succeeded, ok),
                                     "failed": count(.failed, ok), "cancelled": count(.cancelled, ok)]
        }
        let kills = ledger.kills
        let byMinute = (ledger.schedulerRSSByMinute.keys.max().map { 0...$0 } ?? 0...(-1)).map { ledger.schedulerRSSByMinute[$0] ?? 0 }
        let schedulerKills = kills.filter { $0.target == "scheduler" }.count
        let dropped = ledger.droppedByIncarnation.values.reduce(0, +)
        let disk = ledger.disk.mapValues { ["peak_bytes": Self.n($0.peak), "samples": $0.samples, "over_cap_samples": $0.overCap] as [String: Any] }
        let figures: [String: Any] = [
            "builds": [
                "submitted": builds.count, "accepted": accepted.count,
                "submit_refused": builds.filter { $0.submit == "refused" }.count,
                "submit_unanswered": builds.filter { $0.submit == "unknown" }.count,
                "submit_unanswered_found": unansweredFound,
                "succeeded": count(.succeeded), "failed": count(.failed), "failed_on_purpose": onPurpose,
                "failed_unexpectedly": unexpected.count, "cancelled": cancelled,
                "cancel_requested": accepted.filter(\.cancelSent).count, "cache_hits": accepted.filter { $0.cachedJobs > 0 }.count,
                "artifacts_verified": verified, "in_database": facts.databaseRows.count, "by_kind": byKind,
            ] as [String: Any],
            "unexpected_failures": unexpected.prefix(20).map { "\($0.label): \($0.failure.prefix(300))" },
            "kills": [
                "total": kills.count, "scheduler": schedulerKills, "agents": kills.count - schedulerKills,
                "agent_a": kills.filter { $0.target == "agent-a" }.count, "agent_b": kills.filter { $0.target == "agent-b" }.count,
                "mean_downtime_s": kills.isEmpty ? 0 : (kills.map { $0.downtime }.reduce(0, +) / Double(kills.count) * 10).rounded() / 10,
                "schedule": kills.map { ["target": $0.target, "at_s": Int($0.at), "downtime_s": ($0.downtime * 10).rounded() / 10] as [String: Any] },
            ] as [String: Any],
            "refused": [
                "dropped_messages_metric": Self.n(dropped), "scheduler_starts_scraped": ledger.droppedByIncarnation.count,
                "log_warnings": facts.refusedInLogs.warnings, "log_messages": facts.refusedInLogs.messages,
            ] as [String: Any],
            "hostile": [
                "actions": ledger.hostile, "welcomes": facts.hostileWelcomes, "assigns": facts.hostileAssigns,
                "disconnects": facts.hostileDisconnects,
            ] as [String: Any],
            "rss": [
                "scheduler_peak_bytes": Self.n(rss.peak), "scheduler_hwm_bytes": Self.n(ledger.schedulerHWM), "scheduler_samples": rss.samples,
                "agent_peak_bytes": Self.n(ledger.agentRSS.peak), "limit_bytes": Self.n(settings.rssCapBytes),
                "scheduler_peak_by_minute_bytes": byMinute.map(Self.n),
            ] as [String: Any],
            "disk": [
                "peak_bytes": Self.n((ledger.disk["farm"] ?? SoakPeak()).peak), "by_directory": disk,
                "largest_object_bytes": ledger.largestObject.mapValues(Self.n), "store_cap_bytes": Self.n(settings.storeCapBytes),
                "state_cap_bytes": Self.n(settings.stateCapBytes), "agent_state_cap_bytes": Self.n(settings.agentStateCapBytes),
            ] as [String: Any],
            "leftovers": ["processes": facts.leftoverProcesses, "mounts": facts.leftoverMounts],
        ]
        json = figures.merging([
            "ok": ok,
            "failed_checks": checks.filter { !$0.ok }.map(\.name),
            "checks": Dictionary(uniqueKeysWithValues: checks.map { ($0.name, ["ok": $0.ok, "detail": $0.detail] as [String: Any]) }),
            "settings": [
                "minutes": settings.minutes, "seed": Self.n(settings.seed), "kill_every_s": settings.killEverySeconds,
                "max_in_flight": settings.maxInFlight, "lease_s": SoakRun.lease, "attempt_deadline": SoakRun.attemptDeadline,
                "stage_timeout": SoakRun.stageTimeout, "build_stage_timeout_ms": Self.n(SoakRun.buildStageTimeoutMS),
                "store_cap_gib": settings.storeCapGiB, "retention_options": run.retentionOptions,
            ] as [String: Any],
            "duration_s": Int(SoakLedger.seconds(ContinuousClock.now - run.ledger.started)),
            "farm_dir": run.farm.dir,
        ] as [String: Any]) { a, _ in a }

        // The table.
        var t = "\nKILN SOAK: \(settings.minutes) min (seed \(settings.seed)), scheduler + agent-a + agent-b + a hostile client key\n\n"
        t += Self.columns([["CHECK", "RESULT", "DETAIL"]] + checks.map { [$0.name, $0.ok ? "ok" : "FAIL", $0.detail] })
        let hostileSent = ledger.hostile.filter { !$0.key.hasPrefix("session") && !$0.key.hasPrefix("foreign") && !$0.key.hasPrefix("own") }
            .values.reduce(0, +)
        t += "\n" + Self.columns([["FIGURE", "VALUE"],
            ["builds submitted", "\(builds.count) (\(accepted.count) accepted, \(builds.filter { $0.submit == "refused" }.count) refused, "
                + "\(builds.filter { $0.submit == "unknown" }.count) unanswered of which \(unansweredFound) exist)"],
            ["builds succeeded", "\(count(.succeeded)) (\(accepted.filter { $0.cachedJobs > 0 }.count) with a cached tree; "
                + "\(verified) archives verified)"],
            ["builds failed", "\(count(.failed)) (\(onPurpose) on purpose, \(unexpected.count) not)"],
            ["builds cancelled", "\(cancelled) (\(accepted.filter(\.cancelSent).count) cancels sent)"],
            ["kills", "\(kills.count): scheduler \(schedulerKills), agents \(kills.count - schedulerKills)"],
            ["refused messages", "\(dropped) (kiln_dropped_messages_total over \(ledger.droppedByIncarnation.count) scheduler starts); "
                + "\(facts.refusedInLogs.warnings) log warnings for \(facts.refusedInLogs.messages)"],
            ["hostile messages sent", "\(hostileSent) (\(ledger.hostile.filter { $0.key.hasPrefix("session") }.values.reduce(0, +)) sessions)"],
            ["peak scheduler RSS", "\(Self.mb(rss.peak)) sampled, \(Self.mb(ledger.schedulerHWM)) VmHWM; by minute "
                + byMinute.map { String(format: "%.0f", Double($0) / 1_000_000) }.joined(separator: " ") + " MB"],
            ["peak agent RSS", Self.mb(ledger.agentRSS.peak)],
            ["peak disk", "\(Self.mib((ledger.disk["farm"] ?? SoakPeak()).peak)) (the farm's directory); stores "
                + ["scheduler", "agent-a", "agent-b"].map { Self.mib((ledger.disk["\($0) store"] ?? SoakPeak()).peak) }.joined(separator: " / ")
                + ", state " + ["scheduler", "agent-a", "agent-b"].map { Self.mib((ledger.disk["\($0) state"] ?? SoakPeak()).peak) }
                    .joined(separator: " / ")],
            ["left behind by SIGKILLs", "\(facts.leftoverProcesses) process(es), \(facts.leftoverMounts) mount(s)"],
        ])
        if !unexpected.isEmpty {
            t += "\nUNEXPECTED FAILURES (first 5)\n" + unexpected.prefix(5).map { "  \($0.label): \($0.failure.prefix(200))" }.joined(separator: "\n") + "\n"
        }
        t += "\n" + (ok ? "kiln soak: every check holds\n" : "kiln soak: FAILED: \(checks.filter { !$0.ok }.map(\.name).joined(separator: ", "))\n")
        table = t
    }

    func write(to path: String?) {
        guard let path else { return }
        if let data = try? JSONSerialization.data(withJSONObject: json, options: [.prettyPrinted, .sortedKeys]) {
            _ = FileManager.default.createFile(atPath: path, contents: data + Data("\n".utf8))
        }
        let txt = path.hasSuffix(".json") ? String(path.dropLast(5)) + ".txt" : path + ".txt"
        _ = FileManager.default.createFile(atPath: txt, contents: Data(table.utf8))
    }

    /// JSON numbers as Int (what JSONSerialization takes everywhere).
    static func n(_ v: UInt64) -> Int { Int(clamping: v) }

    static func mib(_ bytes: UInt64) -> String { String(format: "%.1f MiB", Double(bytes) / 1_048_576) }
    static func mb(_ bytes: UInt64) -> String { String(format: "%.1f MB", Double(bytes) / 1_000_000) }

    static func list(_ items: [String]) -> String {
        items.prefix(8).joined(separator: "; ") + (items.count > 8 ? "; and \(items.count - 8) more" : "")
    }

    /// Left-aligned columns; the last column is not padded.
    static func columns(_ rows: [[String]]) -> String {
        guard let n = rows.first?.count else { return "" }
        let widths = (0..<(n - 1)).map { c in rows.map { $0[c].count }.max() ?? 0 }
        return rows.map { r in
            (0..<n).map { c in c < n - 1 ? r[c].padding(toLength: widths[c], withPad: " ", startingAt: 0) : r[c] }.joined(separator: "  ")
        }.joined(separator: "\n") + "\n"
    }
}
