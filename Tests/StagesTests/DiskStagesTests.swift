import Foundation
import Manifest
import KilnTestSupport
import Testing
@testable import Stages

/// LVM, XFS and swap in regions of a disk image, and filesystems that leave
/// other filesystems' mountpoints empty; checked with lvm2, xfsprogs,
/// blkid and e2fsprogs as a user would.
@Suite(.serialized)
struct DiskStagesTests {
    static let vgID = "Kiln00-vgid-0000-0000-0000-0000-000001"
    static let pvID = "Kiln00-pvid-0000-0000-0000-0000-000002"

    /// Standard output of each lvm2 command on the region, failing the test on a non-zero exit.
    func lvm(_ f: AssemblyFixture, _ file: String, offset: UInt64, size: UInt64, _ commands: [[String]]) async throws -> [String] {
        try await privateLVM(file: file, offset: Int64(offset), size: Int64(size), scratch: f.root, commands).map { r in
            #expect(r.status == 0, "lvm2 failed: \(r.errors)")
            return r.output
        }
    }

    func report(_ json: String, _ key: String) throws -> [[String: String]] {
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        let reports = try #require(object["report"] as? [[String: Any]])
        return try #require(reports.first?[key] as? [[String: String]])
    }

    @Test func lvm2MetadataIsWhatLVMReadsAndVolumesAreWhereKilnWritesThem() async throws {
        let f = try AssemblyFixture()
        defer { f.remove() }
        try await f.run("org.osbuild.truncate", #"{"filename": "disk.raw", "size": "80 MiB"}"#)
        // The physical volume is the region from 1 MiB to 65 MiB: 15 extents after its 1 MiB of metadata.
        let pvStart: UInt64 = 2048, pvSize: UInt64 = 131_072
        try await f.run("org.kiln.lvm2.create", """
            {"vg_name": "testvg", "vg_uuid": "\(Self.vgID)", "pv_uuid": "\(Self.pvID)", "creation_time": 1700000000,
             "volumes": [{"name": "rootlv", "uuid": "Kiln00-lv00-0000-0000-0000-0000-000003", "extents": 3},
                         {"name": "homelv", "uuid": "Kiln00-lv00-0000-0000-0000-0000-000004", "extents": 2}]}
            """, devices: ["device": f.region("disk.raw", start: pvStart, size: pvSize)])
        // Kiln's offsets: pe_start 1 MiB, 4 MiB extents, volumes in order.
        let homeStart = pvStart + 2048 + 3 * 8192
        try await f.run("org.kiln.mkfs.ext4", #"{"uuid": "1d7c52a1-6f5c-4e51-9a8a-7f3c2c0b9e01", "label": "home", "source": "/home"}"#,
                        inputs: ["tree": .tree(f.tree)], devices: ["device": f.region("disk.raw", start: homeStart, size: 2 * 8192)])

        let disk = f.output + "/disk.raw"
        let out = try await lvm(f, disk, offset: pvStart * 512, size: pvSize * 512, [
            ["pvck", "DEVICE"],
            ["vgck", "testvg"],
            ["pvs", "--reportformat", "json", "--units", "s", "-o", "pv_name,pv_uuid,pe_start,dev_size,vg_name"],
            ["vgs", "--reportformat", "json", "-o", "vg_name,vg_uuid,vg_extent_count,vg_free_count,lv_count,vg_autoactivation"],
            ["lvs", "--reportformat", "json", "--segments", "-o", "lv_name,lv_uuid,seg_pe_ranges,lv_time"],
        ])
        let pv = try #require(try report(out[2], "pv").first)
        #expect(pv["pv_uuid"] == Self.pvID)
        #expect(pv["pe_start"] == "2048S")
        #expect(pv["dev_size"] == "\(pvSize)S")
        #expect(pv["vg_name"] == "testvg")
        let vg = try #require(try report(out[3], "vg").first)
        #expect(vg["vg_uuid"] == Self.vgID)
        #expect(vg["vg_extent_count"] == "15" && vg["vg_free_count"] == "10" && vg["lv_count"] == "2")
        #expect(vg["vg_autoactivation"] == "enabled", "the image's initramfs activates it by itself")
        let lvs = try report(out[4], "seg")
        #expect(lvs.map { $0["lv_name"] } == ["homelv", "rootlv"])
        let home = try #require(lvs.first { $0["lv_name"] == "homelv" })
        #expect(home["lv_uuid"] == "Kiln00-lv00-0000-0000-0000-0000-000004")
        #expect(home["seg_pe_ranges"]?.hasSuffix(":3-4") == true, "homelv follows rootlv's three extents")
        #expect(home["lv_time"]?.hasPrefix("2023-11-14") == true)
        // The filesystem written at Kiln's offset is the one in the volume.
        #expect(try await f.sh("dumpe2fs", "-h", "\(disk)?offset=\(homeStart * 512)").contains("Filesystem volume name:   home"))

        // The same options give the same bytes.
        try await f.run("org.osbuild.truncate", #"{"filename": "again.raw", "size": "80 MiB"}"#)
        try await f.run("org.kiln.lvm2.create", """
            {"vg_name": "testvg", "vg_uuid": "\(Self.vgID)", "pv_uuid": "\(Self.pvID)", "creation_time": 1700000000,
             "volumes": [{"name": "rootlv", "uuid": "Kiln00-lv00-0000-0000-0000-0000-000003", "extents": 3},
                         {"name": "homelv", "uuid": "Kiln00-lv00-0000-0000-0000-0000-000004", "extents": 2}]}
            """, devices: ["device": f.region("again.raw", start: pvStart, size: pvSize)])
        #expect(try DiskFile.read(disk, offset: pvStart * 512, count: 1 << 20)
                == DiskFile.read(f.output + "/again.raw", offset: pvStart * 512, count: 1 << 20))
    }

    @Test func lvm2RejectsVolumesThatDoNotFitOrClash() async throws {
        let f = try AssemblyFixture()
        defer { f.remove() }
        try await f.run("org.osbuild.truncate", #"{"filename": "disk.raw", "size": "32 MiB"}"#)
        let small = await #expect(throws: AssemblyError.self) {
            try await f.run("org.kiln.lvm2.create", """
                {"vg_name": "vg", "vg_uuid": "\(Self.vgID)", "pv_uuid": "\(Self.pvID)",
                 "volumes": [{"name": "big", "uuid": "\(Self.vgID)", "extents": 100}]}
                """, devices: ["device": f.region("disk.raw", start: 2048, size: nil)])
        }
        #expect(small?.description.contains("make the partition larger") == true)
        await #expect(throws: StageError.self) {
            try await f.run("org.kiln.lvm2.create", """
                {"vg_name": "vg", "vg_uuid": "\(Self.vgID)", "pv_uuid": "\(Self.pvID)",
                 "volumes": [{"name": "a", "uuid": "\(Self.vgID)", "extents": 1}, {"name": "a", "uuid": "\(Self.pvID)", "extents": 1}]}
                """, devices: ["device": f.region("disk.raw", start: 2048, size: nil)])
        }
        let badID = await #expect(throws: AssemblyError.self) {
            try await f.run("org.kiln.lvm2.create", """
                {"vg_name": "vg", "vg_uuid": "short", "pv_uuid": "\(Self.pvID)", "volumes": [{"name": "a", "uuid": "\(Self.vgID)", "extents": 1}]}
                """, devices: ["device": f.region("disk.raw", start: 2048, size: nil)])
        }
        #expect(badID?.description.contains("options.vg_uuid") == true)
    }

    @Test func xfsHoldsItsSubtreeWithOwnersLinksAndEmptyMountpoints() async throws {
        let f = try AssemblyFixture()
        defer { f.remove() }
        try TreeFiles.write("data\n", to: "/home/user/projects/readme", in: f.tree)
        try await f.run("org.osbuild.truncate", #"{"filename": "disk.raw", "size": "400 MiB"}"#)
        let uuid = "5b0e5c3c-7a7e-4b6f-8d0a-2a9b8c1e4f10"
        try await f.run("org.kiln.mkfs.xfs", #"{"uuid": "\#(uuid)", "label": "home", "source": "/home", "exclude": ["/home/user/projects"]}"#,
                        inputs: ["tree": .tree(f.tree)], devices: ["device": f.region("disk.raw", start: 2048, size: nil)])
        let disk = f.output + "/disk.raw"
        let probe = try await f.sh("blkid", "-p", "-O", String(2048 * 512), "-o", "export", disk)
        #expect(probe.contains("TYPE=xfs") && probe.contains("UUID=\(uuid)") && probe.contains("LABEL=home"))
        // No loop device is left behind.
        #expect(try await !f.sh("losetup", "--list", "--noheadings", "-O", "BACK-FILE").contains(disk))
        // Read back the way the image mounts it (read-only, without log recovery).
        let mnt = f.root + "/mnt"
        try FileManager.default.createDirectory(atPath: mnt, withIntermediateDirectories: true)
        _ = try await f.sh("mount", "-t", "xfs", "-o", "ro,norecovery,nouuid,loop,offset=\(2048 * 512)", disk, mnt)
        defer { _ = umount2(mnt, Int32(MNT_DETACH)) }
        #expect(try String(contentsOfFile: mnt + "/user/notes.txt", encoding: .utf8) == "secret\n")
        let attributes = try FileManager.default.attributesOfItem(atPath: mnt + "/user/notes.txt")
        #expect(attributes[.ownerAccountID] as? Int == 1000 && attributes[.posixPermissions] as? Int == 0o640)
        #expect(try FileManager.default.contentsOfDirectory(atPath: mnt + "/user/projects").isEmpty, "a mountpoint stays empty")
        #expect(!FileManager.default.fileExists(atPath: mnt + "/etc"), "only its subtree")
        _ = try await f.sh("umount", mnt)
    }

    @Test func ext4LeavesOtherFilesystemsMountpointsEmptyButKeepsThem() async throws {
        let f = try AssemblyFixture()
        defer { f.remove() }
        try await f.run("org.osbuild.truncate", #"{"filename": "disk.raw", "size": "64 MiB"}"#)
        try await f.run("org.kiln.mkfs.ext4", #"{"uuid": "6f1a6a7c-3f47-4d35-9a4e-1d8e3b2f0a11", "exclude": ["/home", "/boot/efi"]}"#,
                        inputs: ["tree": .tree(f.tree)], devices: ["device": f.region("disk.raw", start: 2048, size: nil)])
        let ext4 = "\(f.output)/disk.raw?offset=\(2048 * 512)"
        _ = try await f.sh("e2fsck", "-fn", ext4)
        #expect(try await f.sh("debugfs", "-R", "cat /etc/hostname", ext4) == "kiln\n")
        let home = try await f.sh("debugfs", "-R", "ls -p /home", ext4)
        #expect(!home.contains("user"), "the contents of /home belong to its own filesystem")
        #expect(try await f.sh("debugfs", "-R", "stat /home/user", ext4).isEmpty)
        let homeDir = try await f.sh("debugfs", "-R", "stat /home", ext4)
        #expect(homeDir.contains("Type: directory") && homeDir.contains("Mode:  0755"))
        #expect(!(try await f.sh("debugfs", "-R", "ls -p /boot/efi", ext4)).contains("EFI"))
        #expect(try await f.sh("debugfs", "-R", "ls -p /boot", ext4).contains("grub"), "/boot itself is still on root")
        // The tree is untouched and nothing stays mounted.
        #expect(FileManager.default.fileExists(atPath: f.tree + "/home/user/notes.txt"))
        #expect(try !String(contentsOfFile: "/proc/self/mounts", encoding: .utf8).contains(f.root))
    }

    @Test func excludingASymbolicLinkIsRefused() async throws {
        let f = try AssemblyFixture()
        defer { f.remove() }
        try TreeFiles.symlink("/run", at: "/var/run", in: f.tree)
        try await f.run("org.osbuild.truncate", #"{"filename": "disk.raw", "size": "64 MiB"}"#)
        let e = await #expect(throws: StageError.self) {
            try await f.run("org.kiln.mkfs.ext4", #"{"uuid": "6f1a6a7c-3f47-4d35-9a4e-1d8e3b2f0a11", "exclude": ["/var/run"]}"#,
                            inputs: ["tree": .tree(f.tree)], devices: ["device": f.region("disk.raw", start: 2048, size: nil)])
        }
        #expect(e?.description.contains("/var/run") == true)
    }

    @Test func mkswapMakesASwapAreaTheKernelRecognises() async throws {
        let f = try AssemblyFixture()
        defer { f.remove() }
        try await f.run("org.osbuild.truncate", #"{"filename": "disk.raw", "size": "64 MiB"}"#)
        let disk = f.output + "/disk.raw"
        try DiskFile.write([UInt8](repeating: 0xAA, count: 8192), to: disk, offset: 2048 * 512)  // stale bytes are cleared
        try await f.run("org.osbuild.mkswap", #"{"uuid": "0b9e6c1e-2f7d-4e5a-9c3b-8d7f6a5e4c3b", "label": "swap"}"#,
                        devices: ["device": f.region("disk.raw", start: 2048, size: 32768)])
        let probe = try await f.sh("blkid", "-p", "-O", String(2048 * 512), "-S", String(32768 * 512), "-o", "export", disk)
        #expect(probe.contains("TYPE=swap") && probe.contains("UUID=0b9e6c1e-2f7d-4e5a-9c3b-8d7f6a5e4c3b") && probe.contains("LABEL=swap"))
        #expect(try DiskFile.read(disk, offset: 2048 * 512 + 4096, count: 4096).allSatisfy { $0 == 0 })
        // Swap header: the last page index covers the whole region.
        let header = try DiskFile.read(disk, offset: 2048 * 512 + 1024, count: 8)
        #expect(DiskFile.getLE(header, at: 4, width: 4) == UInt64(32768 * 512 / 4096 - 1))
    }
}
