import Foundation
import Images
import KilnTestSupport
import Manifest
import Stages
import Testing

/// Disk customizations built for real and booted: root on LVM with an XFS
/// /home and swap on GPT (UEFI), and a DOS table with an XFS /boot (BIOS GRUB
/// from the gap before the first partition). Both run in the x86_64 lane.
typealias FS = Blueprint.FilesystemSpec

extension SystemImages {
    func diskRequest(type: String, _ disk: Blueprint.Disk) throws -> ImageRequest {
        var r = try request(type: type)
        r.blueprint.customizations.disk = disk
        return r
    }

    /// `sfdisk --json` of the raw disk.
    func partitionTable(_ raw: String) async throws -> [String: Any] {
        let json = try await run(["sfdisk", "--json", raw])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        return try #require(object["partitiontable"] as? [String: Any])
    }

    /// What blkid finds at a region of the raw disk (`TYPE`, `UUID`, `LABEL`).
    func probe(_ raw: String, start: Int64, size: Int64) async throws -> [String: String] {
        let out = try await run(["blkid", "-p", "-O", String(start * 512), "-S", String(size * 512), "-o", "export", raw])
        return Dictionary(out.split(separator: "\n").compactMap { line -> (String, String)? in
            let kv = line.split(separator: "=", maxSplits: 1).map(String.init)
            return kv.count == 2 ? (kv[0], kv[1]) : nil
        }, uniquingKeysWith: { a, _ in a })
    }

    /// `lvs` of the physical volume at `start` of the raw disk (the host's LVM is left alone).
    func logicalVolumes(_ raw: String, start: Int64, size: Int64) async throws -> [[String: String]] {
        let r = try #require(try await privateLVM(file: raw, offset: start * 512, size: size * 512, scratch: Self.storeRoot, [
            ["lvs", "--reportformat", "json", "--units", "b", "--nosuffix", "-o", "vg_name,lv_name,lv_size"],
        ]).first)
        #expect(r.status == 0, "lvs failed: \(r.errors)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(r.output.utf8)) as? [String: Any])
        return try #require(((object["report"] as? [[String: Any]])?.first?["lv"]) as? [[String: String]])
    }

    func partitions(_ table: [String: Any]) throws -> [[String: Any]] {
        try #require(table["partitions"] as? [[String: Any]])
    }

    func int(_ value: Any?) -> Int64 { (value as? NSNumber)?.int64Value ?? -1 }

}

extension X86ImageTests {
    @Test("x86_64 qcow2: root on LVM, XFS /home and swap as volumes, Kiln's /boot; boots under UEFI", .tags(.boot), .tier(.ci, .boot))
    func lvmRootWithXfsHomeAndSwap() async throws {
        let r = try diskRequest(type: "qcow2", .init(partitions: [
            .lvm(.init(name: "rootvg", logicalVolumes: [
                FS(name: "rootlv", mountpoint: "/", fsType: "ext4", minSize: 3 << 30),
                FS(name: "homelv", mountpoint: "/home", fsType: "xfs", label: "home", minSize: 512 << 20),
                FS(name: "swaplv", mountpoint: nil, fsType: "swap", minSize: 256 << 20),
            ])),
        ]))
        let manifest = try await ManifestGenerator(resolver: Depsolver()).manifest(for: r)
        let result = try await executor().run(manifest, exports: ["os", "image", "qcow2"])
        let tree = try #require(result.exports["os"])
        let raw = try #require(result.exports["image"]) + "/disk.raw"

        // The table: BIOS boot, ESP, the /boot Kiln adds, the LVM physical volume.
        let table = try await partitionTable(raw)
        #expect(table["label"] as? String == "gpt")
        let parts = try partitions(table)
        #expect(parts.compactMap { $0["type"] as? String } == [
            "21686148-6449-6E6F-744E-656564454649", "C12A7328-F81F-11D2-BA4B-00A0C93EC93B",
            "BC13C2FF-59E6-4262-A352-B275FD6F7172", "E6D6D379-F507-44C2-A23C-238F2A3DF928",
        ])
        let pv = parts[3]
        let lvs = try await logicalVolumes(raw, start: int(pv["start"]), size: int(pv["size"]))
        #expect(lvs.map { $0["vg_name"] } == ["rootvg", "rootvg", "rootvg"])
        #expect(Set(lvs.compactMap { $0["lv_name"] }) == ["rootlv", "homelv", "swaplv"])
        #expect(lvs.first { $0["lv_name"] == "homelv" }?["lv_size"] == String(512 << 20))
        #expect(lvs.first { $0["lv_name"] == "rootlv" }?["lv_size"] == String(3 << 30))

        // Each filesystem is where its volume is, with the UUID fstab names.
        let disk = try ImageDefinition(distro: r.distro, architecture: r.architecture, imageType: r.imageType)
            .diskLayout(ids: DeterministicIDs(seed: r.seed), blueprint: r.blueprint)
        let fstab = read(tree, "/etc/fstab")
        for v in disk.volumes {
            let found = try await probe(raw, start: v.start, size: v.size)
            #expect(found["TYPE"] == v.filesystem.type.rawValue, "\(v.filesystem.mountpoint ?? "swap"): \(found)")
            #expect(found["UUID"] == v.filesystem.fsUUID)
            #expect(fstab.contains("UUID=\(v.filesystem.fsUUID) \(v.filesystem.mountpoint ?? "none") \(v.filesystem.type.rawValue) "))
        }
        #expect(try await probe(raw, start: disk.volume(mountpoint: "/home")!.start, size: 1 << 20)["LABEL"] == "home")
        // The initramfs activates the group: lvm and its udev rules are in it.
        let initrd = try #require(try FileManager.default.contentsOfDirectory(atPath: tree + "/boot").first { $0.hasPrefix("initrd.img-") })
        let listing = try await run(["sh", "-c", "zstd -dc \"$1\" | cpio -t --quiet", "sh", tree + "/boot/" + initrd])
            .split(separator: "\n")
        #expect(listing.contains("usr/sbin/lvm") && listing.contains("usr/lib/udev/rules.d/69-lvm.rules"))
        #expect(listing.contains { $0.hasSuffix("/dm-mod.ko") } && listing.contains { $0.hasSuffix("/xfs.ko") })
        // GRUB reads /boot by its own UUID, with paths relative to it.
        let cfg = read(tree, "/boot/grub/grub.cfg")
        #expect(cfg.contains("search --no-floppy --fs-uuid --set=root \(disk.boot.filesystem.uuid)"))
        #expect(cfg.contains("\tlinux\t/vmlinuz-") && cfg.contains("root=UUID=\(disk.rootFilesystemUUID) ro"))

        // Reaching the login prompt means the initramfs found root on LVM and every fstab mount succeeded.
        try await boots(try #require(result.exports["qcow2"]) + "/disk.qcow2", firmware: "uefi")
    }
}

extension X86ImageTests {
    @Test("x86_64 raw: DOS table with an XFS /boot and LVM root; GRUB's core image in the MBR gap boots it under BIOS", .tags(.boot), .tier(.ci, .boot))
    func dosTableWithXfsBootUnderBIOS() async throws {
        let r = try diskRequest(type: "raw", .init(type: "dos", partitions: [
            .plain(FS(mountpoint: "/boot", fsType: "xfs", label: "boot", minSize: 512 << 20)),
            .lvm(.init(name: "vg0", logicalVolumes: [
                FS(mountpoint: "/", fsType: "ext4", minSize: 3 << 30),
                FS(mountpoint: nil, fsType: "swap", minSize: 256 << 20),
            ])),
        ]))
        let manifest = try await ManifestGenerator(resolver: Depsolver()).manifest(for: r)
        let result = try await executor().run(manifest, exports: ["image"])
        let raw = try #require(result.exports["image"]) + "/disk.raw"

        let table = try await partitionTable(raw)
        #expect(table["label"] as? String == "dos")
        let parts = try partitions(table)
        #expect(parts.compactMap { $0["type"] as? String } == ["ef", "83", "8e"])
        #expect(parts.map { $0["bootable"] as? Bool ?? false } == [false, true, false])
        #expect(int(parts[0]["start"]) == 2048, "GRUB's core image lives in the sectors before it")
        #expect(try await probe(raw, start: int(parts[1]["start"]), size: int(parts[1]["size"]))["TYPE"] == "xfs")
        let lvs = try await logicalVolumes(raw, start: int(parts[2]["start"]), size: int(parts[2]["size"]))
        #expect(lvs.compactMap { $0["lv_name"] }.sorted() == ["rootlv", "swaplv"])
        // The MBR boot code points at the core image in sector 1.
        let mbr = try #require(FileHandle(forReadingAtPath: raw)).readData(ofLength: 512)
        #expect(mbr[0x5C] == 1 && mbr[0x1FE] == 0x55 && mbr[0x1FF] == 0xAA)

        try await boots(raw, firmware: "bios")
    }
}
