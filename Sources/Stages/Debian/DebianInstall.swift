import Dispatch
import Foundation
import Logging
import Manifest
import StageOptions

/// Installs pinned Debian packages into an empty tree.
///
/// Architecture-independent work runs natively on the host: the control
/// data is read in-process, the Essential set is extracted in parallel so a
/// chroot works at all, and the host's own dpkg (`--root`) unpacks every
/// package (so its database, diversions, triggers and conffiles are exactly
/// dpkg's). Only maintainer scripts and the final configuration run in the
/// tree, with the tree's dpkg, emulated for a foreign architecture. With
/// `defer_initramfs`, `update-initramfs` is diverted to a no-op during the
/// installation so that `org.kiln.initramfs` builds the initramfs once.
package struct DebianInstall: Stage {
    package typealias Options = DebianInstallOptions
    package static let type = Options.stageType
    package static let sourceFile = StageSource.path()
    package static let placement = Placement.tree
    package static let inputs: [String: InputKind] = ["packages": .sourceFiles]
    package static let checkpoint = true

    package init() {}

    /// Suffix of the name under which a deferred tool's real file waits.
    static let divertSuffix = ".kiln-deferred"
    static let policyRcD = "/usr/sbin/policy-rc.d"

    package func run(_ options: Options, in context: StageContext) async throws {
        guard let arch = Architecture(name: options.architecture) else {
            throw StageError.invalidOptions(reason: "\(Self.type): architecture \"\(options.architecture)\" is not amd64 or arm64")
        }
        let tree = context.tree
        let log = context.logger
        var clock = PhaseClock(logger: log, logPath: context.commands.logPath)

        // 1. Read every package's control data (in-process, in parallel).
        let paths = try context.inputFiles("packages").values.sorted()
        let set = try DebPackageSet(try await Self.readAll(paths), architecture: arch.debian)
        let essential = set.essentialClosure
        guard essential.contains("dpkg") else { throw DebianInstallError.missingEssential(names: ["dpkg"]) }
        if arch != .host { try Self.checkEmulation(arch) }
        clock.lap("read \(set.packages.count) packages")

        // 2. An empty skeleton, merged-/usr links, and the Essential set extracted natively.
        try Self.prepareSkeleton(tree, arch: arch, mergedUsr: options.mergedUsr ?? true)
        let essentialPackages = set.packages.filter { essential.contains($0.name) }
        try await Self.extract(essentialPackages, into: tree, context: context)
        clock.lap("extract \(essentialPackages.count) essential packages natively")

        // 3. No services start; initramfs generation deferred.
        try TreeFiles.write(
            "#!/bin/sh\n# kiln: no service starts while the image is built\nexit 101\n",
            to: Self.policyRcD, in: tree, mode: 0o755)
        let deferred = try await Self.deferTools(set, initramfs: options.deferInitramfs ?? true, foreign: arch != .host, context: context)
        clock.lap("defer \(deferred.map(\.path).joined(separator: ", "))")

        // 4. Unpack with the host's dpkg, configure with the tree's, in rounds
        //    so that a preinst finds its Pre-Depends configured.
        let hostDpkg =
            ["dpkg", "--root=\(tree)", "--log=\(tree)/var/log/dpkg.log", "--force-unsafe-io", "--force-depends"]
            + (arch == .host ? [] : ["--force-architecture"])
        let native =
            NativeTools.applies(release: options.release, foreign: arch != .host)
            ? NativeTools(tree: tree, commands: context.commands) : nil
        let sandbox = Sandbox(tree: tree, commands: context.commands)
        var pending = Set(set.packages.map(\.name))
        var configured: Set<String> = []
        var round = 0
        while !pending.isEmpty {
            round += 1
            var ready = pending.filter { name in
                guard let p = set[name], p.hasPreinst else { return true }
                return set.preDependsClosure(of: name).isSubset(of: configured.union(essential).union([name]))
            }
            if ready.isEmpty { ready = pending }
            // Essential first, so that later preinsts find a working system.
            let order = set.packages.filter { ready.contains($0.name) }
                .sorted { (essential.contains($0.name) ? 0 : 1, $0.name) < (essential.contains($1.name) ? 0 : 1, $1.name) }
            try await context.run(
                sandbox.hostCommandLine(
                    hostDpkg + ["--unpack"] + order.map(\.path),
                    readOnly: order.map { ($0.path as NSString).deletingLastPathComponent }))
            pending.subtract(ready)
            clock.lap("round \(round): unpack \(order.count) packages (host dpkg)")
            if pending.isEmpty { break }
            // Configure what the remaining preinsts need.
            var needed: Set<String> = []
            for name in pending where set[name]?.hasPreinst == true { needed.formUnion(set.preDependsClosure(of: name)) }
            needed.subtract(configured)
            needed = needed.filter { !pending.contains($0) }
            if !needed.isEmpty {
                try await sandbox.run(["dpkg", "--configure"] + needed.sorted())
                configured.formUnion(needed)
                clock.lap("round \(round): configure \(needed.count) pre-dependencies (tree dpkg)")
            }
        }
        // Every file is in place now: the native tools may stand in for the tree's.
        // usr-is-merged checks the top-level links (and would remove the /lib64 the
        // native loader needs), so it is configured first, emulated.
        if native != nil, set["usr-is-merged"] != nil {
            try await sandbox.run(["dpkg", "--configure", "usr-is-merged"])
            configured.insert("usr-is-merged")
        }
        // The required base first, so that no maintainer script runs before the tools
        // it may assume (dpkg orders `--pending` by declared dependencies only).
        let base = set.requiredClosure.subtracting(configured)
        try await Self.optionally(native) {
            if !base.isEmpty, base.count < set.packages.count {
                try await sandbox.run(["dpkg", "--configure"] + base.sorted())
                clock.lap("configure \(base.count) required packages (tree dpkg)")
            }
            try await sandbox.run(["dpkg", "--configure", "--pending"])
        }
        clock.lap("configure all (tree dpkg\(native == nil ? "" : ", native interpreters and file tools"))")

        // 5. Clean up and check the database.
        try await Self.restore(deferred, context: context)
        try? FileManager.default.removeItem(atPath: try context.path(Self.policyRcD))
        try Self.cleanCaches(tree)
        try await Self.verify(tree, set: set, context: context)
        clock.lap("clean up and verify")
        log.info("debian.install finished", metadata: ["packages": "\(set.packages.count)", "seconds": "\(clock.total)"])
    }

    // MARK: - Steps

    /// Runs `body` inside `native`'s mounts when there is one.
    static func optionally<T: Sendable>(_ native: NativeTools?, _ body: () async throws -> T) async throws -> T {
        guard let native else { return try await body() }
        return try await native.with(body)
    }

    /// A program replaced by a no-op while packages are configured.
    struct DeferredTool {
        /// Path as the package ships it (`/usr/sbin/update-initramfs`, `/sbin/depmod`).
        let path: String
        let name: String
    }

    /// Diverts programs whose work is better done once or natively: `update-initramfs`
    /// (with `defer_initramfs`; `org.kiln.initramfs` builds the initramfs once) and, for a
    /// foreign architecture, `depmod` (run natively by the host afterwards; its output does
    /// not depend on the architecture that computes it).
    static func deferTools(_ set: DebPackageSet, initramfs: Bool, foreign: Bool, context: StageContext) async throws -> [DeferredTool] {
        var wanted: [(packages: [String], name: String)] = []
        if initramfs { wanted.append((["initramfs-tools-core", "initramfs-tools"], "update-initramfs")) }
        if foreign { wanted.append((["kmod"], "depmod")) }
        var tools: [DeferredTool] = []
        for (packages, name) in wanted {
            for p in packages.compactMap({ set[$0] }) {
                for path in try DebPackage.listFiles(p.path) where path.hasSuffix("bin/\(name)") {
                    tools.append(DeferredTool(path: path, name: name))
                }
            }
        }
        for t in tools {
            try await context.run([
                "dpkg-divert", "--root=\(context.tree)", "--local", "--rename",
                "--divert", t.path + divertSuffix, "--add", t.path,
            ])
            try TreeFiles.write(
                "#!/bin/sh\n# kiln: \(t.name) is deferred while packages are configured\nexit 0\n",
                to: t.path, in: context.tree, mode: 0o755)
        }
        return tools
    }

    /// Puts the deferred programs back and does the deferred native work.
    static func restore(_ tools: [DeferredTool], context: StageContext) async throws {
        for t in tools {
            try? FileManager.default.removeItem(atPath: try context.path(t.path))
            try await context.run([
                "dpkg-divert", "--root=\(context.tree)", "--rename",
                "--divert", t.path + divertSuffix, "--remove", t.path,
            ])
        }
        guard tools.contains(where: { $0.name == "depmod" }) else { return }
        let modules = try context.path("/lib/modules")
        for version in ((try? FileManager.default.contentsOfDirectory(atPath: modules)) ?? []).sorted() {
            let systemMap = try context.path("/boot/System.map-\(version)")
            let map = FileManager.default.fileExists(atPath: systemMap) ? ["-F", systemMap] : []
            try await context.run(["depmod", "-b", context.tree, "-a"] + map + [version])
        }
    }

    static func readAll(_ paths: [String]) async throws -> [DebPackage] {
        let queue = DispatchQueue(label: "kiln.debian.read", attributes: .concurrent)
        return try await withThrowingTaskGroup(of: DebPackage.self) { group in
            for path in paths {
                group.addTask {
                    try await withCheckedThrowingContinuation { c in
                        queue.async { c.resume(with: Result { try DebPackage.read(path) }) }
                    }
                }
            }
            var out: [DebPackage] = []
            for try await p in group { out.append(p) }
            return out
        }
    }

    static func checkEmulation(_ arch: Architecture) throws {
        let handler = arch == .aarch64 ? "qemu-aarch64" : "qemu-x86_64"
        let status = (try? String(contentsOfFile: "/proc/sys/fs/binfmt_misc/\(handler)", encoding: .utf8)) ?? ""
        guard status.hasPrefix("enabled") else { throw DebianInstallError.cannotRunTarget(architecture: arch.debian) }
    }

    static func prepareSkeleton(_ tree: String, arch: Architecture, mergedUsr: Bool) throws {
        let fm = FileManager.default
        try fm.createDirectory(atPath: tree, withIntermediateDirectories: true)
        let existing = try fm.contentsOfDirectory(atPath: tree)
        guard existing.isEmpty else { throw DebianInstallError.treeNotEmpty(path: tree) }
        var dirs = [
            "var/lib/dpkg/info", "var/lib/dpkg/updates", "var/lib/dpkg/triggers", "var/lib/dpkg/alternatives",
            "etc/dpkg/dpkg.cfg.d", "etc/apt/apt.conf.d", "var/cache/apt/archives/partial", "var/log", "tmp",
        ]
        if mergedUsr {
            var links = ["bin": "usr/bin", "sbin": "usr/sbin", "lib": "usr/lib"]
            if arch == .x86_64 { links["lib64"] = "usr/lib64" }
            for (link, target) in links.sorted(by: { $0.key < $1.key }) {
                dirs.append(target)
                try fm.createDirectory(atPath: "\(tree)/\(target)", withIntermediateDirectories: true)
                try TreeFiles.symlink(target, at: "/\(link)", in: tree)
            }
        }
        for d in dirs { try fm.createDirectory(atPath: "\(tree)/\(d)", withIntermediateDirectories: true) }
        chmod("\(tree)/tmp", 0o1777)
        for f in ["var/lib/dpkg/status", "var/lib/dpkg/available"] {
            fm.createFile(atPath: "\(tree)/\(f)", contents: Data())
        }
    }

    /// Extracts packages' files (not their database entries) natively, in parallel.
    static func extract(_ packages: [DebPackage], into tree: String, context: StageContext) async throws {
        let width = max(2, ProcessInfo.processInfo.activeProcessorCount + 1)
        let script = "set -eo pipefail; dpkg-deb --fsys-tarfile \"$1\" | tar -x -C \"$2\" --keep-directory-symlink --numeric-owner"
        // Biggest first, so the long ones do not end up last.
        let sized = packages.map { p in (p, (try? FileManager.default.attributesOfItem(atPath: p.path)[.size] as? Int) ?? 0) }
            .sorted { $0.1 > $1.1 }.map(\.0)
        try await withThrowingTaskGroup(of: Void.self) { group in
            var next = sized.makeIterator()
            func add() {
                guard let p = next.next() else { return }
                group.addTask { try await context.run(["bash", "-c", script, "extract", p.path, tree]) }
            }
            for _ in 0..<width { add() }
            while try await group.next() != nil { add() }
        }
    }

    static func cleanCaches(_ tree: String) throws {
        let fm = FileManager.default
        for dir in ["var/cache/apt/archives", "var/cache/apt/archives/partial"] {
            for f in (try? fm.contentsOfDirectory(atPath: "\(tree)/\(dir)")) ?? [] where f.hasSuffix(".deb") {
                try fm.removeItem(atPath: "\(tree)/\(dir)/\(f)")
            }
        }
        // Backups and logs with build-time timestamps: not part of a reproducible tree (mmdebstrap drops them too).
        for f in [
            "var/lib/dpkg/status-old", "var/lib/dpkg/diversions-old", "var/lib/dpkg/statoverride-old",
            "var/log/dpkg.log", "var/log/alternatives.log", "var/cache/ldconfig/aux-cache",
        ] {
            try? fm.removeItem(atPath: "\(tree)/\(f)")
        }
    }

    /// `dpkg --audit` is clean and every package of the set is installed (`ii`).
    static func verify(_ tree: String, set: DebPackageSet, context: StageContext) async throws {
        let admin = "--admindir=\(tree)/var/lib/dpkg"
        // The tree's own dpkg: the host's would call every package of a foreign architecture unknown.
        let audit = try await Sandbox(tree: tree, commands: context.commands).output(["dpkg", "--audit"])
        let states = try await context.output(["dpkg-query", admin, "--show", "--showformat=${db:Status-Abbrev}\t${Package}\n"])
        var installed: Set<String> = []
        var bad: [String] = []
        for line in states.split(separator: "\n") {
            let parts = line.split(separator: "\t", maxSplits: 1)
            guard parts.count == 2 else { continue }
            let abbrev = parts[0].trimmingCharacters(in: .whitespaces)
            if abbrev == "ii" { installed.insert(String(parts[1])) } else { bad.append("\(parts[1]): \(abbrev)") }
        }
        let missing = set.packages.map(\.name).filter { !installed.contains($0) }
        let diversions = (try TreeFiles.read("/var/lib/dpkg/diversions", in: tree) ?? "")
            .split(separator: "\n").filter { $0.hasSuffix(divertSuffix) }.joined(separator: ", ")
        var report: [String] = []
        if !audit.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { report.append(audit) }
        if !bad.isEmpty { report.append("not fully installed: " + bad.joined(separator: ", ")) }
        if !missing.isEmpty { report.append("not installed: " + missing.joined(separator: ", ")) }
        if !diversions.isEmpty { report.append("leftover diversions: " + diversions) }
        if !report.isEmpty { throw DebianInstallError.inconsistentDatabase(report: report.joined(separator: "\n")) }
    }
}

/// Logs how long each phase of a stage took.
struct PhaseClock {
    let logger: Logger
    /// The stage log, which also gets one `# phase: … s` line per phase.
    let logPath: String
    private let start = ContinuousClock.now
    private var last = ContinuousClock.now

    init(logger: Logger, logPath: String) {
        self.logger = logger
        self.logPath = logPath
    }

    mutating func lap(_ phase: String) {
        let now = ContinuousClock.now
        let seconds = Self.seconds(now - last)
        logger.info("phase done", metadata: ["phase": "\(phase)", "seconds": "\(seconds)"])
        if let h = FileHandle(forWritingAtPath: logPath) {
            h.seekToEndOfFile()
            h.write(Data("# phase: \(phase): \(seconds) s\n".utf8))
            try? h.close()
        }
        last = now
    }

    var total: String { Self.seconds(ContinuousClock.now - start) }

    private static func seconds(_ d: Duration) -> String {
        let ms = d.components.seconds * 1000 + d.components.attoseconds / 1_000_000_000_000_000
        return String(format: "%.1f", Double(ms) / 1000)
    }
}
