import Foundation
import Testing
@testable import Stages

@Suite("org.kiln.initramfs", .serialized)
struct InitramfsStageTests {
    static func kernelVersion(_ tree: String) throws -> String {
        let name = try #require(try FileManager.default.contentsOfDirectory(atPath: tree + "/boot").first { $0.hasPrefix("vmlinuz-") })
        return String(name.dropFirst("vmlinuz-".count))
    }

    /// Every path in the tree with its size and modification time, except `/boot/initrd.img-*`.
    static func snapshot(_ tree: String) throws -> [String] {
        let text = String(decoding: try InitramfsFixture.output(["find", tree, "-printf", "%P %s %T@ %m %l\n"]), as: UTF8.self)
        // /boot itself gets a new entry, so its own mtime changes: compare everything else.
        return text.split(separator: "\n").map(String.init).filter { !$0.hasPrefix("boot/initrd.img-") && !$0.hasPrefix("boot ") }.sorted()
    }

    @Test("amd64: layout, modules with dependencies, loader and libc, reproducible, nothing else touched")
    func amd64() async throws {
        let tree = try InitramfsFixture.tree(arch: "amd64")
        defer { try? FileManager.default.removeItem(atPath: tree) }
        let version = try Self.kernelVersion(tree)
        let before = try Self.snapshot(tree)
        let context = try InitramfsFixture.context(tree: tree)
        defer { try? FileManager.default.removeItem(atPath: context.scratch) }

        try await InitramfsStage().run(.init(modules: ["loop"]), in: context)
        let initrd = tree + "/boot/initrd.img-\(version)"
        let first = try #require(FileManager.default.contents(atPath: initrd))
        #expect(try Self.snapshot(tree) == before)

        let files = Set(try InitramfsFixture.listing(initrd))
        let mods = "usr/lib/modules/\(version)"
        for path in ["init", "scripts/local", "scripts/functions", "scripts/init-top/ORDER", "conf/initramfs.conf", "conf/arch.conf",
                     "bin", "lib64", "usr/bin/busybox", "usr/bin/sh", "usr/bin/kmod", "usr/sbin/modprobe", "usr/bin/udevadm",
                     "usr/lib/systemd/systemd-udevd", "usr/sbin/blkid", "usr/bin/ipconfig", "usr/sbin/run-init",
                     "usr/lib64/ld-linux-x86-64.so.2", "usr/lib/x86_64-linux-gnu/libc.so.6", "usr/lib/x86_64-linux-gnu/libkmod.so.2",
                     "usr/lib/udev/rules.d/60-persistent-storage.rules", "\(mods)/modules.dep", "\(mods)/modules.dep.bin",
                     "\(mods)/modules.builtin", "\(mods)/kernel/drivers/block/virtio_blk.ko", "\(mods)/kernel/drivers/virtio/virtio_ring.ko",
                     "\(mods)/kernel/drivers/scsi/virtio_scsi.ko", "\(mods)/kernel/fs/xfs/xfs.ko", "\(mods)/kernel/lib/libcrc32c.ko",
                     "\(mods)/kernel/drivers/block/loop.ko"] {
            let present = files.contains(path)
            #expect(present, "missing \(path)")
        }
        // ext4 and nvme: modules or built into this kernel.
        let builtin = String(decoding: try InitramfsFixture.output(["sh", "-c", "zstd -dc \"$1\" | cpio -i --quiet --to-stdout \(mods)/modules.builtin", "sh", initrd]), as: UTF8.self)
        for module in ["kernel/fs/ext4/ext4.ko", "kernel/fs/jbd2/jbd2.ko", "kernel/drivers/nvme/host/nvme.ko", "kernel/drivers/scsi/sd_mod.ko"] {
            let present = files.contains("\(mods)/\(module)") || builtin.contains(module + "\n")
            #expect(present, "\(module) is neither in the archive nor built in")
        }
        // The regenerated modules.dep covers the subset, dependencies included.
        let dep = String(decoding: try InitramfsFixture.output(["sh", "-c", "zstd -dc \"$1\" | cpio -i --quiet --to-stdout \(mods)/modules.dep", "sh", initrd]), as: UTF8.self)
        let blk = try #require(dep.split(separator: "\n").first { $0.hasPrefix("kernel/drivers/block/virtio_blk.ko:") })
        #expect(blk.contains("kernel/drivers/virtio/virtio_ring.ko"))
        for line in dep.split(separator: "\n") {
            for d in line.split(separator: ":").dropFirst().joined().split(separator: " ") {
                let present = files.contains("\(mods)/\(d)")
                #expect(present, "modules.dep names \(d), which is not in the archive")
            }
        }
        let order = String(decoding: try InitramfsFixture.output(["sh", "-c", "zstd -dc \"$1\" | cpio -i --quiet --to-stdout scripts/init-top/ORDER", "sh", initrd]), as: UTF8.self)
        #expect(order.contains("/scripts/init-top/udev \"$@\""))

        // Reproducible: a second run gives the same bytes.
        try await InitramfsStage().run(.init(modules: ["loop"]), in: context)
        #expect(FileManager.default.contents(atPath: initrd) == first)
    }

    @Test("arm64: built on this x86_64 host from aarch64 binaries without running them")
    func arm64() async throws {
        let tree = try InitramfsFixture.tree(arch: "arm64")
        defer { try? FileManager.default.removeItem(atPath: tree) }
        let version = try Self.kernelVersion(tree)
        let context = try InitramfsFixture.context(tree: tree)
        defer { try? FileManager.default.removeItem(atPath: context.scratch) }
        try await InitramfsStage().run(.init(), in: context)
        let files = Set(try InitramfsFixture.listing(tree + "/boot/initrd.img-\(version)"))
        let mods = "usr/lib/modules/\(version)"
        for path in ["init", "scripts/local", "usr/lib/ld-linux-aarch64.so.1", "usr/lib/aarch64-linux-gnu/libc.so.6", "usr/bin/busybox",
                     "usr/bin/udevadm", "\(mods)/modules.dep", "\(mods)/kernel/drivers/block/virtio_blk.ko", "\(mods)/kernel/fs/xfs/xfs.ko"] {
            let present = files.contains(path)
            #expect(present, "missing \(path)")
        }
        let arch = String(decoding: try InitramfsFixture.output(["sh", "-c", "zstd -dc \"$1\" | cpio -i --quiet --to-stdout conf/arch.conf", "sh", tree + "/boot/initrd.img-\(version)"]), as: UTF8.self)
        #expect(arch == "DPKG_ARCH=arm64\n")
    }

    /// Developer check on a full tree: `KILN_INITRAMFS_TREE=/path swift test --filter existingTree`.
    @Test("builds for an existing tree given by KILN_INITRAMFS_TREE",
          .enabled(if: ProcessInfo.processInfo.environment["KILN_INITRAMFS_TREE"] != nil))
    func existingTree() async throws {
        let tree = try #require(ProcessInfo.processInfo.environment["KILN_INITRAMFS_TREE"])
        let context = try InitramfsFixture.context(tree: tree)
        let start = ContinuousClock.now
        try await InitramfsStage().run(.init(), in: context)
        print("org.kiln.initramfs on \(tree): \(ContinuousClock.now - start); log \(context.scratch)/stage.log")
    }

    @Test("unknown options are refused with the field and the fix")
    func badOptions() async throws {
        let context = try InitramfsFixture.context(tree: "/nonexistent")
        await #expect(throws: StageError.self) { try await InitramfsStage().run(.init(compression: "bzip3"), in: context) }
    }
}
