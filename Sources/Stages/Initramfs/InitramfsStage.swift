import Foundation
import Logging
import StageOptions

#if canImport(Glibc)
import Glibc
#endif

/// `org.kiln.initramfs`: writes `/boot/initrd.img-<version>` for every kernel
/// in the tree, equivalent to what the tree's initramfs-tools would make,
/// without running any program of the tree (fast for any architecture).
package struct InitramfsStage: Stage {
    package typealias Options = InitramfsOptions
    package static let type = Options.stageType
    package static let sourceFile = StageSource.path()
    package static let placement = Placement.tree
    package static let compressions = ["zstd", "gzip", "xz", "lz4", "none"]
    /// What each compressor appends to the file it packs in place.
    static let suffixes = ["zstd": ".zst", "gzip": ".gz", "xz": ".xz", "lz4": ".lz4"]

    package init() {}

    package func run(_ options: Options, in context: StageContext) async throws {
        if let c = options.compression, !Self.compressions.contains(c) {
            throw StageError.invalidOptions(
                reason: "org.kiln.initramfs: options.compression: \"\(c)\" is not one of \(Self.compressions.joined(separator: ", "))")
        }
        let tree = TreeView(root: context.tree)
        let kernels = try Self.kernels(in: tree)
        if kernels.isEmpty {
            context.logger.info("no kernel with modules in /boot: nothing to do")
            return
        }
        let machine = try InitramfsBuilder.treeMachine(tree)
        let mtime = UInt32(ProcessInfo.processInfo.environment["SOURCE_DATE_EPOCH"].flatMap { UInt32($0) } ?? 0)
        for (version, modulesDirectory) in kernels {
            let start = ContinuousClock.now
            let builder = InitramfsBuilder(
                tree: tree, version: version, modulesDirectory: modulesDirectory, machine: machine,
                extraModules: options.modules ?? [], logger: context.logger)
            let staging = context.scratch + "/initramfs-\(version)"
            try? FileManager.default.removeItem(atPath: staging)
            try FileManager.default.createDirectory(atPath: staging, withIntermediateDirectories: true)
            chmod(staging, 0o755)
            try await Self.blocking { try builder.stage(into: staging) }
            let staged = ContinuousClock.now

            // Compressed modules (trixie ships .ko.xz) are unpacked, as mkinitramfs does.
            let packed = try Self.files(under: staging + "/usr/lib/modules/\(version)")
            let xz = packed.filter { $0.hasSuffix(".ko.xz") }, zst = packed.filter { $0.hasSuffix(".ko.zst") }
            if !xz.isEmpty { try await context.run(["xz", "-d", "-q"] + xz) }
            if !zst.isEmpty { try await context.run(["zstd", "-q", "-d", "--rm"] + zst) }
            try await context.run(["depmod", "-a", "-b", staging, version])
            for name in (try? FileManager.default.contentsOfDirectory(atPath: staging + "/usr/lib/modules/\(version)")) ?? []
            where name.hasPrefix("modules.") && name.hasSuffix("map") {
                unlink(staging + "/usr/lib/modules/\(version)/" + name)
            }

            let indexed = ContinuousClock.now
            let compression = try Self.compression(options.compression, config: builder.config, tree: tree, version: version, logger: context.logger)
            let cpio = context.scratch + "/initramfs-\(version).cpio"
            try await Self.blocking { try CpioWriter.write(directory: staging, to: cpio, mtime: mtime) }
            let archived = ContinuousClock.now
            let target = try context.path("/boot/initrd.img-\(version)")
            let temporary = try context.path("/boot/.initrd.img-\(version).kiln-tmp")
            var packedArchive = cpio
            if let suffix = compression.first.flatMap({ Self.suffixes[$0] }) {
                try await context.run(compression + ["-f", cpio])
                packedArchive = cpio + suffix
            }
            unlink(temporary)
            try FileManager.default.copyItem(atPath: packedArchive, toPath: temporary)
            try? FileManager.default.removeItem(atPath: packedArchive)
            chmod(temporary, 0o644)
            guard rename(temporary, target) == 0 else {
                throw StageError.badPath(path: "/boot/initrd.img-\(version)", reason: "cannot rename into place: \(String(cString: strerror(errno)))")
            }
            try? FileManager.default.removeItem(atPath: staging)
            try? FileManager.default.removeItem(atPath: cpio)
            let end = ContinuousClock.now
            context.logger.info(
                "wrote /boot/initrd.img-\(version)",
                metadata: [
                    "initramfs.total": "\(end - start)", "initramfs.staging": "\(staged - start)", "initramfs.depmod": "\(indexed - staged)",
                    "initramfs.cpio": "\(archived - indexed)", "initramfs.compress": "\(end - archived)",
                ])
        }
    }

    /// `(version, in-tree modules directory)` for each `/boot/vmlinuz-<version>` that has modules, sorted.
    package static func kernels(in tree: TreeView) throws -> [(String, String)] {
        var out: [(String, String)] = []
        for name in tree.list("/boot") where name.hasPrefix("vmlinuz-") {
            let version = String(name.dropFirst("vmlinuz-".count))
            guard !version.isEmpty, !version.contains("/") else { continue }
            for dir in ["/lib/modules/\(version)", "/usr/lib/modules/\(version)"] where tree.isDirectory(dir) {
                out.append((version, try tree.resolve(dir)))
                break
            }
        }
        return out
    }

    /// The compressor command (empty: none), checked against the kernel's `CONFIG_RD_*`.
    static func compression(_ option: String?, config: InitramfsConfig, tree: TreeView, version: String, logger: Logger) throws -> [String] {
        var name = option ?? config["COMPRESS"] ?? "zstd"
        if !compressions.contains(name) {
            logger.warning("COMPRESS=\(name) in the tree's initramfs.conf is not supported; using zstd")
            name = "zstd"
        }
        let symbol = ["gzip": "CONFIG_RD_GZIP", "xz": "CONFIG_RD_XZ", "lz4": "CONFIG_RD_LZ4", "zstd": "CONFIG_RD_ZSTD"][name]
        if let symbol, let kconfig = tree.readText("/boot/config-\(version)"), !kconfig.contains("\n\(symbol)=y") {
            if option != nil { throw InitramfsError.compressionUnsupported(compression: name, kernel: version, symbol: symbol) }
            logger.warning("\(name) compression (\(symbol)) not supported by kernel \(version), using gzip")
            name = "gzip"
        }
        // A level from the tree goes into the tool's argv: digits only, never an option of its own.
        let level = (option == nil ? config["COMPRESSLEVEL"] : nil).flatMap { l in
            !l.isEmpty && l.count <= 2 && l.allSatisfy(\.isASCII) && l.allSatisfy(\.isNumber) ? l : nil
        }
        switch name {
        case "zstd": return ["zstd", "-q", "--rm", "-T0", "-\(level ?? "9")"]  // zstd 1.5 output does not depend on the thread count
        case "gzip": return ["gzip", "-n"] + (level.map { ["-\($0)"] } ?? [])
        case "xz": return ["xz", "--check=crc32"] + (level.map { ["-\($0)"] } ?? [])
        case "lz4": return ["lz4", "-q", "--rm", "-\(level ?? "9")", "-l"]
        default: return []
        }
    }

    static func files(under dir: String) throws -> [String] {
        guard let e = FileManager.default.enumerator(atPath: dir) else { return [] }
        return e.compactMap { $0 as? String }.map { dir + "/" + $0 }.sorted()
    }

    /// Runs blocking file work off the cooperative pool.
    static func blocking<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(with: Result { try work() }) }
        }
    }
}
