import Foundation
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// Assembles the initramfs staging directory for one kernel of a tree the
/// way Debian's mkinitramfs (initramfs-tools 0.142) does, with its hooks
/// reimplemented natively: no program from the tree ever runs.
package struct InitramfsBuilder: Sendable {
    package let tree: TreeView
    package let version: String
    /// In-tree, symlink-resolved `/lib/modules/<version>`.
    package let modulesDirectory: String
    package let machine: UInt16
    package let extraModules: [String]
    package let logger: Logger
    package let config: InitramfsConfig

    /// Hooks under `/usr/share/initramfs-tools/hooks` that Kiln performs itself (or, for `resume` and `keymap`, knowingly skips).
    package static let knownHooks: Set<String> = ["udev", "kmod", "fsck", "thermal", "dmsetup", "lvm2", "zz-busybox", "klibc-utils", "resume", "keymap", "xfs"]

    package init(tree: TreeView, version: String, modulesDirectory: String, machine: UInt16, extraModules: [String], logger: Logger) {
        self.tree = tree
        self.version = version
        self.modulesDirectory = modulesDirectory
        self.machine = machine
        self.extraModules = extraModules
        self.logger = logger
        self.config = InitramfsConfig(tree: tree)
    }

    package var dpkgArchitecture: String {
        switch machine {
        case ELFFile.machineX86_64: "amd64"
        case ELFFile.machineAArch64: "arm64"
        default: "unknown"
        }
    }

    /// The ELF machine of the tree's programs (read from `/bin/sh` or kmod).
    package static func treeMachine(_ tree: TreeView) throws -> UInt16 {
        for candidate in ["/bin/sh", "/usr/bin/kmod", "/bin/kmod", "/bin/busybox", "/usr/bin/dpkg"] {
            if let real = try? tree.resolve(candidate), let h = ELFFile.header(atPath: tree.host(real)) { return h.machine }
        }
        throw InitramfsError.missingBinary(path: "/bin/sh", neededBy: "architecture detection")
    }

    /// Fills `root` (an empty directory). Module decompression, depmod and the archive are the caller's (host tools).
    package func stage(into root: String) throws {
        let share = InitramfsConfig.shareDir, confDir = InitramfsConfig.confDir
        guard tree.isRegularFile(share + "/init") else { throw InitramfsError.missingInitramfsTools(path: share + "/init") }
        let s = InitramfsStaging(root: root, tree: tree, resolver: LibraryResolver(tree: tree, machine: machine))
        let index = try KernelModuleIndex(tree: tree, directory: modulesDirectory)

        // Layout: merged /usr, as mkinitramfs creates it.
        var topLevel = ["bin"]
        topLevel += tree.list("/").filter { $0.hasPrefix("lib") && tree.isDirectory("/" + $0) }
        topLevel.append("sbin")
        for d in topLevel {
            try s.makeDirectory("/usr/" + d)
            try s.symlink("usr/" + d, at: "/" + d)
        }
        let modulesDir = "/lib/modules/\(version)"
        for d in ["/conf/conf.d", "/etc", "/run", "/scripts", modulesDir] { try s.makeDirectory(d) }
        for f in ["modules.builtin", "modules.builtin.bin", "modules.builtin.modinfo", "modules.order"]
        where tree.isRegularFile(modulesDirectory + "/" + f) {
            try s.copyBytes(from: try tree.resolve(modulesDirectory + "/" + f), to: InitramfsStaging.usrPath(modulesDir + "/" + f))
        }

        // Modules.
        func add(_ names: [String]) throws {
            for rel in index.closure(names) {
                let path = modulesDirectory + "/" + rel
                guard tree.isRegularFile(path) else { throw InitramfsError.missingModule(name: KernelModuleIndex.name(ofPath: rel), path: path) }
                try s.copyFile(path)
            }
        }
        var forceLoad: [String] = []
        for file in [confDir + "/modules"] + tree.list(share + "/modules.d").map({ share + "/modules.d/" + $0 }) where tree.isRegularFile(file) {
            for line in (tree.readText(file) ?? "").split(separator: "\n") where !line.hasPrefix("#") {
                let f = line.split(separator: " ", maxSplits: 1).map(String.init)
                guard let module = f.first?.trimmingCharacters(in: .whitespaces), !module.isEmpty else { continue }
                try add([module])
                forceLoad.append("\(module) \(f.count > 1 ? f[1] : "")")
            }
        }
        if !forceLoad.isEmpty { try s.write(forceLoad.joined(separator: "\n") + "\n", to: "/conf/modules") }
        let mode = config["MODULES"] ?? "most"
        switch mode {
        case "list": break
        default:
            if mode != "most" { logger.warning("MODULES=\(mode) is built as MODULES=most (a superset; dep needs the running hardware)", metadata: ["kernel": "\(version)"]) }
            try add(moduleNames(in: ModuleCoverage.mostDirectories) + ModuleCoverage.mostModules)
        }
        try add(ModuleCoverage.kilnModules)
        for m in extraModules {
            guard index.knows(m) else {
                throw StageError.invalidOptions(reason: "org.kiln.initramfs: options.modules: kernel \(version) has no module \"\(m)\" (not in modules.dep, modules.builtin or modules.alias)")
            }
        }
        try add(extraModules)

        // init, scripts, configuration.
        try s.copyBytes(from: try tree.resolve(share + "/init"), to: "/init")
        try copyScripts(from: share + "/scripts", depth: Int.max, into: s)
        try copyScripts(from: confDir + "/scripts", depth: 2, into: s)
        try s.write("DPKG_ARCH=\(dpkgArchitecture)\n", to: "/conf/arch.conf")
        if tree.isRegularFile(confDir + "/initramfs.conf") {
            try s.copyBytes(from: try tree.resolve(confDir + "/initramfs.conf"), to: "/conf/initramfs.conf")
        }
        for file in config.extraConfFiles { try s.copyFile(file, to: "/conf/conf.d") }
        if let root = config["ROOT"] { try s.write("ROOT=\(root)\n", to: "/conf/conf.d/root") }
        try s.write("", to: "/etc/fstab")
        try s.symlink("/proc/mounts", at: "/etc/mtab")

        try s.copyExec("/sbin/modprobe", to: "/sbin")
        try s.copyExec("/sbin/rmmod", to: "/sbin")
        try s.makeDirectory("/etc/modprobe.d")
        try s.makeDirectory("/lib/modprobe.d")
        for dir in ["/etc/modprobe.d", "/lib/modprobe.d"] {
            for name in tree.list(dir) where name.hasSuffix(".conf") { try s.copyFile(dir + "/" + name) }
        }

        // Hooks, in the order their prerequisites give.
        let hooks = tree.list(share + "/hooks") + tree.list(confDir + "/hooks")
        for hook in hooks where !Self.knownHooks.contains(hook) {
            logger.warning("initramfs hook \(hook) is not reproduced by org.kiln.initramfs; what it adds is missing", metadata: ["kernel": "\(version)"])
        }
        let has = Set(hooks)
        if has.contains("udev") { try udevHook(s) }
        if has.contains("kmod") { try kmodHook(s) }
        if has.contains("fsck") { try fsckHook(s) }
        if has.contains("thermal"), machine == ELFFile.machineX86_64 { try add(["fan", "thermal"]) }
        if has.contains("dmsetup") {
            try copyRules(["55-dm.rules", "60-persistent-storage-dm.rules", "95-dm-notify.rules"], s)
            try s.copyExec("/sbin/dmsetup")
            try add(["dm_mod"])
        }
        if has.contains("lvm2"), tree.isRegularFile("/sbin/lvm") {
            // lvm2's hook. Without systemd in the initramfs, 69-lvm.rules runs
            // `lvm vgchange -aay` itself once a group's last physical volume
            // appears; bookworm's and trixie's lvm2 ship no local-top script.
            try s.copyExec("/sbin/lvm")
            for tool in ["vgchange"] where !s.exists("/sbin/" + tool) { try s.symlink("lvm", at: "/usr/sbin/" + tool) }
            try copyRules(["56-lvm.rules", "69-lvm.rules"], s)
            for file in ["/etc/lvm/lvm.conf", "/etc/lvm/lvmlocal.conf"] where tree.isRegularFile(file) { try s.copyFile(file) }
            for name in tree.list("/etc/lvm/profile") where tree.isRegularFile("/etc/lvm/profile/" + name) {
                try s.copyFile("/etc/lvm/profile/" + name)
            }
            try add(["dm_mod", "dm_snapshot", "dm_mirror", "dm_raid", "raid0", "raid1", "raid10", "raid456"])
        }
        if has.contains("xfs"), rootFilesystemType() == "xfs" {
            // xfsprogs' hook: the repair tools, for a root filesystem on XFS.
            for tool in ["/sbin/xfs_repair", "/usr/sbin/xfs_db", "/usr/sbin/xfs_metadump"] where tree.isRegularFile(tool) {
                try s.copyExec(tool)
            }
        }
        if config["KEYMAP"] == "y" { logger.warning("KEYMAP=y: the console keymap is not added to the initramfs") }
        let busybox = config["BUSYBOX"] ?? "auto"
        if has.contains("zz-busybox"), busybox != "n", tree.isRegularFile("/bin/busybox") { try busyboxHook(s) }
        if has.contains("klibc-utils") { try klibcHook(s) }

        // hidden_dep_add_modules, over what is staged now.
        var hidden: [String] = []
        for name in index.builtin.sorted() { hidden += ModuleCoverage.hiddenDependencies(of: name) }
        for rel in index.modules.values.map(\.path).sorted() where s.exists(modulesDir + "/" + rel) {
            hidden += ModuleCoverage.hiddenDependencies(of: KernelModuleIndex.name(ofPath: rel))
        }
        try add(hidden)

        try writeOrderFiles(s)

        // ld.so configuration (the cache itself is left to the loader's default paths).
        for name in tree.list("/etc") where name.hasPrefix("ld.so.conf") {
            if tree.isDirectory("/etc/" + name) {
                for f in tree.list("/etc/" + name) { try s.copyVerbatim("/etc/\(name)/\(f)", to: "/etc/\(name)/\(f)") }
            } else {
                try s.copyVerbatim("/etc/" + name, to: "/etc/" + name)
            }
        }
    }

    /// `copy_modules_dir`: names of every module file below the directories, minus the excluded globs.
    func moduleNames(in directories: [ModuleCoverage.Directory]) -> [String] {
        var names: [String] = []
        for d in directories {
            let excludes = d.excluding.map { $0.hasSuffix(".ko") ? $0 + "*" : $0 }
            func walk(_ dir: String) {
                for name in tree.list(dir) {
                    if excludes.contains(where: { fnmatch($0, name, 0) == 0 }) { continue }
                    let path = dir + "/" + name
                    if tree.isDirectory(path) { walk(path) } else if fnmatch("*.ko*", name, 0) == 0 { names.append(KernelModuleIndex.name(ofPath: name)) }
                }
            }
            walk(modulesDirectory + "/" + d.path)
        }
        return names
    }

    private func copyScripts(from dir: String, depth: Int, into s: InitramfsStaging) throws {
        func walk(_ rel: String, _ level: Int) throws {
            for name in tree.list(dir + rel) where !name.hasPrefix(".") {
                let path = dir + rel + "/" + name
                if tree.isDirectory(path) {
                    if level < depth { try walk(rel + "/" + name, level + 1) }
                } else if tree.isRegularFile(path), ScriptOrder.acceptable(name) {
                    try s.copyBytes(from: try tree.resolve(path), to: "/scripts" + rel + "/" + name)
                }
            }
        }
        try walk("", 1)
    }

    private func writeOrderFiles(_ s: InitramfsStaging) throws {
        let share = InitramfsConfig.shareDir, confDir = InitramfsConfig.confDir
        func subdirectories(_ rel: String) -> [String] {
            let names = ((try? FileManager.default.contentsOfDirectory(atPath: s.host("/scripts" + rel))) ?? []).sorted(by: ScriptOrder.byteOrder)
            return names.filter { s.isDirectory("/scripts" + rel + "/" + $0) }.flatMap { [rel + "/" + $0] + subdirectories(rel + "/" + $0) }
        }
        for sub in subdirectories("") {
            let dir = "/scripts" + sub
            var scripts: [String: [String]] = [:]
            let names = ((try? FileManager.default.contentsOfDirectory(atPath: s.host(dir))) ?? [])
            for name in names where ScriptOrder.acceptable(name) && !s.isDirectory(dir + "/" + name) {
                let source = tree.isRegularFile(confDir + dir + "/" + name) ? confDir + dir + "/" + name : share + dir + "/" + name
                guard let real = try? tree.resolve(source), access(tree.host(real), X_OK) == 0 else { continue }
                scripts[name] = ScriptOrder.prerequisites(of: tree.readText(source) ?? "")
            }
            try s.write(ScriptOrder.orderFile(directory: dir, scripts: ScriptOrder.order(scripts)), to: dir + "/ORDER")
        }
    }

    private func copyRules(_ names: [String], _ s: InitramfsStaging) throws {
        try s.makeDirectory("/lib/udev/rules.d")
        for rules in names {
            if tree.isRegularFile("/etc/udev/rules.d/" + rules) {
                try s.copyBytes(from: try tree.resolve("/etc/udev/rules.d/" + rules), to: "/usr/lib/udev/rules.d/" + rules)
            } else if tree.isRegularFile("/lib/udev/rules.d/" + rules) {
                try s.copyBytes(from: try tree.resolve("/lib/udev/rules.d/" + rules), to: "/usr/lib/udev/rules.d/" + rules)
            }
        }
    }

    private func udevHook(_ s: InitramfsStaging) throws {
        try s.makeDirectory("/lib/systemd")
        try s.copyExec("/lib/systemd/systemd-udevd", to: "/lib/systemd")
        try s.copyExec("/bin/udevadm", to: "/bin")
        // systemd 256 and later (trixie) dlopen() libkmod instead of linking it: without it
        // udev loads no driver by modalias and the root disk never appears. Where udevd links
        // it (bookworm) it is already staged and this copies nothing.
        for dir in tree.list("/usr/lib") where tree.isDirectory("/usr/lib/" + dir) {
            for name in tree.list("/usr/lib/" + dir) where name.hasPrefix("libkmod.so.") && tree.isRegularFile("/usr/lib/\(dir)/\(name)") {
                try s.copyExec("/usr/lib/\(dir)/\(name)")
            }
        }
        // The hardware database, where the tree's hook ships it (udev 257's does, 252's does not).
        if (tree.readText(InitramfsConfig.shareDir + "/hooks/udev") ?? "").contains("/usr/lib/udev/hwdb.bin"),
           tree.isRegularFile("/usr/lib/udev/hwdb.bin") {
            try s.copyBytes(from: try tree.resolve("/usr/lib/udev/hwdb.bin"), to: "/usr/lib/udev/hwdb.bin")
        }
        if tree.isRegularFile("/etc/udev/udev.conf") { try s.copyBytes(from: try tree.resolve("/etc/udev/udev.conf"), to: "/etc/udev/udev.conf") }
        try s.makeDirectory("/lib/systemd/network")
        for dir in ["/lib/systemd/network", "/etc/systemd/network"] {
            for name in tree.list(dir) where name.hasSuffix(".link") && tree.isRegularFile(dir + "/" + name) {
                try s.copyBytes(from: try tree.resolve(dir + "/" + name), to: "/usr/lib/systemd/network/" + name)
            }
        }
        try copyRules(["50-firmware.rules", "50-udev-default.rules", "60-block.rules", "60-persistent-storage.rules",
                       "61-persistent-storage-android.rules", "71-seat.rules", "73-special-net-names.rules",
                       "75-net-description.rules", "80-net-setup-link.rules", "80-drivers.rules"], s)
        for name in tree.list("/etc/udev/rules.d") where name.hasSuffix(".rules") && !tree.exists("/lib/udev/rules.d/" + name) {
            if tree.isRegularFile("/etc/udev/rules.d/" + name) {
                try s.copyBytes(from: try tree.resolve("/etc/udev/rules.d/" + name), to: "/usr/lib/udev/rules.d/" + name)
            }
        }
        for program in ["ata_id", "scsi_id"] { try s.copyExec("/lib/udev/" + program, to: "/lib/udev") }
        try s.copyExec("/sbin/blkid", to: "/sbin")
    }

    private func kmodHook(_ s: InitramfsStaging) throws {
        try s.copyExec("/bin/kmod")
        try s.copyVerbatim("/sbin/modprobe", to: "/sbin/modprobe")
        try s.copyVerbatim("/sbin/rmmod", to: "/sbin/rmmod")
        try s.makeDirectory("/lib/modprobe.d")
        for name in tree.list("/lib/modprobe.d") { try s.copyVerbatim("/lib/modprobe.d/" + name, to: "/lib/modprobe.d/" + name) }
    }

    /// The root and /usr filesystem types fsck needs: `FSTYPE` from the configuration, else `/etc/fstab`.
    func fsckTypes() -> [String] {
        if let fstype = config["FSTYPE"], fstype != "auto" { return fstype.split(separator: ",").map(String.init) }
        var types: [String] = []
        for file in ["/etc/fstab"] + tree.list("/etc/fstab.d").filter({ $0.hasSuffix(".fstab") }).map({ "/etc/fstab.d/" + $0 }) {
            for line in (tree.readText(file) ?? "").split(separator: "\n") {
                let f = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
                guard f.count >= 3, !f[0].hasPrefix("#") else { continue }
                if (f[1] == "/" || f[1] == "/usr") && f[2] != "auto" && !types.contains(f[2]) { types.append(f[2]) }
            }
        }
        return types.sorted()
    }

    /// The type of the filesystem `/etc/fstab` (or `/etc/fstab.d/*.fstab`) mounts at `/`.
    func rootFilesystemType() -> String? {
        for file in ["/etc/fstab"] + tree.list("/etc/fstab.d").filter({ $0.hasSuffix(".fstab") }).map({ "/etc/fstab.d/" + $0 }) {
            for line in (tree.readText(file) ?? "").split(separator: "\n") {
                let f = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
                if f.count >= 3, !f[0].hasPrefix("#"), f[1] == "/" { return f[2] }
            }
        }
        return nil
    }

    private func fsckHook(_ s: InitramfsStaging) throws {
        guard tree.isRegularFile("/sbin/fsck") else { return }
        let types = fsckTypes()
        guard !types.isEmpty else { return }
        try s.copyExec("/sbin/fsck")
        try s.copyExec("/sbin/logsave")
        for type in types {
            if let dir = ["/usr/bin", "/sbin", "/bin"].first(where: { tree.isRegularFile($0 + "/fsck." + type) }) {
                try s.copyExec(dir + "/fsck." + type)
            } else {
                logger.warning("/sbin/fsck.\(type) doesn't exist, can't install to initramfs")
            }
        }
    }

    private func busyboxHook(_ s: InitramfsStaging) throws {
        try s.copyExec("/bin/busybox", to: "/bin/busybox")
        guard let data = tree.read("/bin/busybox") else { return }
        let applets = BusyboxApplets.names(in: data)
        if applets.isEmpty { logger.warning("no applet table found in /bin/busybox; only /bin/busybox itself is installed") }
        for applet in applets {
            let location = BusyboxApplets.location(of: applet)
            if !s.exists(location) { try s.hardlink("/usr/bin/busybox", at: InitramfsStaging.usrPath(location)) }
        }
    }

    private func klibcHook(_ s: InitramfsStaging) throws {
        for name in tree.list("/usr/lib/klibc/bin") where !["gzip", "kinit", "zcat"].contains(name) {
            if s.exists("/sbin/" + name) || s.exists("/bin/" + name) { continue }
            let src = "/usr/lib/klibc/bin/" + name
            if tree.isRegularFile(src) { try s.copyBytes(from: try tree.resolve(src), to: "/usr/bin/" + name) }
        }
        let libDir = try tree.resolve("/lib")
        for name in tree.list(libDir) where name.hasPrefix("klibc-") && name.hasSuffix(".so") {
            try s.copyBytes(from: try tree.resolve(libDir + "/" + name), to: "/usr/lib/" + name)
        }
    }
}
