import Foundation
import KilnTestSupport
import Logging
@testable import Stages

/// A small Debian bookworm tree for initramfs tests, made from real packages:
/// a private apt state per architecture downloads the closure of a cloud
/// kernel, initramfs-tools, udev, kmod, klibc and busybox into
/// `/var/cache/kiln/initramfs-fixture/` once; each test extracts them with
/// `dpkg-deb` into a fresh merged-/usr tree and runs the host's `depmod`.
enum InitramfsFixture {
    static let cache = "/var/cache/kiln/initramfs-fixture"
    static let packages = ["linux-image-cloud-ARCH", "initramfs-tools-core", "klibc-utils", "busybox", "kmod", "udev",
                           "util-linux", "e2fsprogs", "libc-bin", "dash", "zstd"]

    static func run(_ argv: [String], in directory: String? = nil) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = argv
        if let directory { p.currentDirectoryURL = URL(fileURLWithPath: directory) }
        p.standardOutput = FileHandle.nullDevice
        let err = Pipe()
        p.standardError = err
        try p.run()
        let errData = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            throw StageError.commandFailed(command: argv, status: "exited with \(p.terminationStatus)", tail: String(decoding: errData.suffix(2000), as: UTF8.self))
        }
    }

    static func output(_ argv: [String]) throws -> Data {
        try runBlocking(argv).output
    }

    /// The downloaded `.deb` files for `arch` (`amd64`/`arm64`), fetched once.
    static func debs(arch: String) throws -> [String] {
        let base = "\(cache)/\(arch)"
        let archives = base + "/archives"
        let done = base + "/complete"
        if !FileManager.default.fileExists(atPath: done) {
            for d in ["/lists/partial", "/archives/partial", "/etc"] {
                try FileManager.default.createDirectory(atPath: base + d, withIntermediateDirectories: true)
            }
            try "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main\n"
                .write(toFile: base + "/etc/sources.list", atomically: true, encoding: .utf8)
            FileManager.default.createFile(atPath: base + "/status", contents: Data())
            let apt = ["-q", "-o", "APT::Architecture=\(arch)", "-o", "APT::Architectures::=\(arch)",
                       "-o", "Dir::State::Lists=\(base)/lists", "-o", "Dir::State::status=\(base)/status",
                       "-o", "Dir::Cache::Archives=\(archives)", "-o", "Dir::Cache::pkgcache=", "-o", "Dir::Cache::srcpkgcache=",
                       "-o", "Dir::Etc::SourceList=\(base)/etc/sources.list", "-o", "Dir::Etc::SourceParts=/nonexistent",
                       "-o", "APT::Install-Recommends=false", "-o", "Debug::NoLocking=true"]
            try run(["apt-get"] + apt + ["update"])
            try run(["apt-get"] + apt + ["-y", "--download-only", "install"] + packages.map { $0.replacingOccurrences(of: "ARCH", with: arch) })
            FileManager.default.createFile(atPath: done, contents: Data())
        }
        return try FileManager.default.contentsOfDirectory(atPath: archives).filter { $0.hasSuffix(".deb") }.sorted().map { archives + "/" + $0 }
    }

    /// A fresh tree in a temporary directory; the caller removes it.
    static func tree(arch: String) throws -> String {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-initramfs-\(UUID().uuidString)").path
        for d in ["usr/bin", "usr/sbin", "usr/lib", "etc", "boot"] {
            try FileManager.default.createDirectory(atPath: root + "/" + d, withIntermediateDirectories: true)
        }
        var links = ["bin", "sbin", "lib"]
        if arch == "amd64" { links.append("lib64"); try FileManager.default.createDirectory(atPath: root + "/usr/lib64", withIntermediateDirectories: true) }
        for l in links { try FileManager.default.createSymbolicLink(atPath: root + "/" + l, withDestinationPath: "usr/" + l) }
        for deb in try debs(arch: arch) {
            try run(["sh", "-c", "dpkg-deb --fsys-tarfile \"$1\" | tar -x --keep-directory-symlink -C \"$2\"", "sh", deb, root])
        }
        // What maintainer scripts would have made: /bin/sh and modules.dep.
        if !FileManager.default.fileExists(atPath: root + "/usr/bin/sh") {
            try FileManager.default.createSymbolicLink(atPath: root + "/usr/bin/sh", withDestinationPath: "dash")
        }
        for version in try FileManager.default.contentsOfDirectory(atPath: root + "/usr/lib/modules") {
            try run(["depmod", "-a", "-b", root, version])
        }
        return root
    }

    static func context(tree: String) throws -> StageContext {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-scratch-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        let logger = Logger(label: "test.initramfs")
        return StageContext(tree: tree, inputs: [:], devices: [:], scratch: scratch, logger: logger,
                            commands: CommandRunner(logPath: scratch + "/stage.log", logger: logger), stageType: InitramfsStage.type)
    }

    /// `zstd -dc | cpio -t` of an initrd.
    static func listing(_ initrd: String) throws -> [String] {
        let text = String(decoding: try output(["sh", "-c", "zstd -dc \"$1\" | cpio -t --quiet", "sh", initrd]), as: UTF8.self)
        return text.split(separator: "\n").map(String.init)
    }
}
