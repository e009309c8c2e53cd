import Foundation
import Manifest
import Testing
@testable import Stages

/// The assembly stages on a real sparse disk image, checked with the tools
/// a user would use: sfdisk, e2fsck, debugfs, mtools, qemu-img, tar.
@Suite(.serialized)
struct AssemblyStagesTests {
    static let biosBoot = "21686148-6449-6E6F-744E-656564454649"
    static let esp = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
    static let rootX86 = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"
    static let diskUUID = "D209C89E-EA5E-4FBD-B161-B461CCE297E0"
    static let rootFS = "6f1a6a7c-3f47-4d35-9a4e-1d8e3b2f0a11"

    /// truncate → sfdisk (GPT: BIOS boot, ESP, root) and its table read back.
    func partitionedDisk(_ f: AssemblyFixture) async throws {
        try await f.run("org.osbuild.truncate", #"{"filename": "disk.raw", "size": "256 MiB"}"#)
        try await f.run("org.osbuild.sfdisk", """
            {"label": "gpt", "uuid": "\(Self.diskUUID)", "partitions": [
              {"start": 2048, "size": 2048, "type": "\(Self.biosBoot)", "uuid": "FAC7F1FB-3E8D-4137-A512-961DE09A5549", "name": "bios"},
              {"start": 4096, "size": 253952, "type": "\(Self.esp)", "uuid": "68B2905B-DF3E-4FB3-80FA-49D1E773AA33", "name": "ESP"},
              {"start": 262144, "type": "\(Self.rootX86)", "uuid": "6264D520-3FB9-423F-8AB8-7A0A8E3D3562", "name": "root"}]}
            """, devices: ["device": f.region("disk.raw", start: 0, size: nil)])
    }

    @Test func truncateMakesASparseFileOfTheGivenSize() async throws {
        let f = try AssemblyFixture()
        defer { f.remove() }
        try await f.run("org.osbuild.truncate", #"{"filename": "/disk.raw", "size": 3221225472}"#)
        var st = stat()
        #expect(stat(f.output + "/disk.raw", &st) == 0)
        #expect(st.st_size == 3 << 30)
        #expect(st.st_blocks == 0)
    }

    @Test func sfdiskWritesTheGPTAsAsked() async throws {
        let f = try AssemblyFixture()
        defer { f.remove() }
        try await partitionedDisk(f)
        let table = try JSONDecoder().decode([String: PartitionTableDump].self,
                                             from: Data(try await f.sh("sfdisk", "--json", f.output + "/disk.raw").utf8))["partitiontable"]
        let t = try #require(table)
        #expect(t.label == "gpt")
        #expect(t.id == Self.diskUUID)
        #expect(t.partitions.map(\.start) == [2048, 4096, 262144])
        #expect(t.partitions.map(\.size) == [2048, 253952, 260096], "sfdisk aligns the end to 1 MiB")
        #expect(t.partitions.map(\.type) == [Self.biosBoot, Self.esp, Self.rootX86])
        #expect(t.partitions.map(\.uuid) == ["FAC7F1FB-3E8D-4137-A512-961DE09A5549", "68B2905B-DF3E-4FB3-80FA-49D1E773AA33",
                                             "6264D520-3FB9-423F-8AB8-7A0A8E3D3562"])
        #expect(t.partitions.map(\.name) == ["bios", "ESP", "root"])
    }

    @Test func sfdiskHonoursPartitionNumbersAndDOSLabels() async throws {
        let f = try AssemblyFixture()
        defer { f.remove() }
        try await f.run("org.osbuild.truncate", #"{"filename": "gpt.raw", "size": "64 MiB"}"#)
        try await f.run("org.osbuild.sfdisk", """
            {"label": "gpt", "uuid": "\(Self.diskUUID)", "partitions": [
              {"start": 2048, "size": 8192, "type": "\(Self.esp)", "partnum": 15},
              {"start": 10240, "type": "\(Self.rootX86)", "partnum": 1, "attrs": [59]}]}
            """, devices: ["device": f.region("gpt.raw", start: 0, size: nil)])
        let gpt = try await PartitionTableDump.read(f.output + "/gpt.raw", in: f.context(type: "test"))
        #expect(gpt.partitions.map(\.number) == [1, 15])
        #expect(gpt.partitions.first?.attrs == "GUID:59")

        try await f.run("org.osbuild.truncate", #"{"filename": "dos.raw", "size": "64 MiB"}"#)
        try await f.run("org.osbuild.sfdisk", """
            {"label": "dos", "uuid": "0x1234abcd", "partitions": [{"start": 2048, "type": "83", "bootable": true}]}
            """, devices: ["device": f.region("dos.raw", start: 0, size: nil)])
        let dos = try await PartitionTableDump.read(f.output + "/dos.raw", in: f.context(type: "test"))
        #expect(dos.label == "dos")
        #expect(dos.id == "0x1234abcd")
        #expect(dos.partitions.first?.bootable == true)
        #expect(dos.partitions.first?.type == "83")
    }

    @Test func filesystemsAndGrubGoIntoTheirRegions() async throws {
        let f = try AssemblyFixture()
        defer { f.remove() }
        try await partitionedDisk(f)
        let disk = f.output + "/disk.raw"
        let tableBefore = try DiskFile.read(disk, offset: 440, count: 72)

        // ESP from /boot/efi; 124 MiB as Debian's, where mkfs.fat's default clusters are too few for FAT32.
        try await f.run("org.kiln.mkfs.fat", #"{"volid": "7b3a4c1d", "label": "ESP", "fat_size": 32, "source": "/boot/efi"}"#,
                        inputs: ["tree": .tree(f.tree)], devices: ["device": f.region("disk.raw", start: 4096, size: 253952)])
        let fat = "\(disk)@@\(4096 * 512)"
        let listing = try await f.sh("mdir", "-i", fat, "::/EFI/BOOT")
        #expect(listing.contains("Volume Serial Number is 7B3A-4C1D"))
        #expect(listing.contains("x        txt"))
        #expect(try await f.sh("mtype", "-i", fat, "::/EFI/BOOT/x.txt") == "esp file\n")
        #expect(try await f.sh("minfo", "-i", fat).contains("FAT32"))

        // Root filesystem from the whole tree.
        try await f.run("org.kiln.mkfs.ext4", #"{"uuid": "\#(Self.rootFS)", "label": "root"}"#,
                        inputs: ["tree": .tree(f.tree)], devices: ["device": f.region("disk.raw", start: 262144, size: 260096)])
        let ext4 = "\(disk)?offset=\(262144 * 512)"
        _ = try await f.sh("e2fsck", "-fn", ext4)
        let header = try await f.sh("dumpe2fs", "-h", ext4)
        #expect(header.contains("Filesystem UUID:          \(Self.rootFS)"))
        #expect(header.contains("Filesystem volume name:   root"))
        #expect(!header.contains("metadata_csum_seed") && !header.contains("orphan_file"))
        let notes = try await f.sh("debugfs", "-R", "stat /home/user/notes.txt", ext4)
        #expect(notes.contains("Mode:  0640"))
        #expect(notes.contains("User:  1000   Group:  1000"))
        let rootInode = try await f.sh("debugfs", "-R", "stat /", ext4)
        #expect(rootInode.contains("User:     0   Group:     0"))
        #expect(try await f.sh("debugfs", "-R", "cat /etc/hostname", ext4) == "kiln\n")
        let bin = try await f.sh("debugfs", "-R", "stat /bin", ext4)
        #expect(bin.contains("Type: symlink") && bin.contains("Fast link dest: \"usr/bin\""))
        #expect(try await f.sh("debugfs", "-R", "stat /usr/bin/hello", ext4).contains("Links: 2"))

        // The ESP survived the root filesystem next to it.
        #expect(try await f.sh("mtype", "-i", fat, "::/EFI/BOOT/x.txt") == "esp file\n")

        // BIOS GRUB: boot code in the MBR pointing at core.img in the BIOS boot partition.
        try await f.run("org.osbuild.grub2.inst", """
            {"filename": "disk.raw", "platform": "i386-pc", "location": 2048,
             "core": {"type": "mkimage", "partlabel": "gpt", "filesystem": "ext4"},
             "prefix": {"type": "partition", "partlabel": "gpt", "number": 2, "path": "/boot/grub"}}
            """, inputs: ["tree": .tree(f.tree)])
        let mbr = try DiskFile.read(disk, offset: 0, count: 512)
        let bootImage = try [UInt8](Data(contentsOf: URL(fileURLWithPath: "/usr/lib/grub/i386-pc/boot.img")))
        #expect(Array(mbr[0..<0x5C]) == Array(bootImage[0..<0x5C]))
        #expect(DiskFile.getLE(mbr, at: 0x5C, width: 8) == 2048)
        #expect(mbr[0x64] == 0xFF && mbr[0x66] == 0x90 && mbr[0x67] == 0x90)
        #expect(Array(mbr[440..<512]) == tableBefore, "the protective MBR's partition table is kept")
        let core = try DiskFile.read(disk, offset: 2048 * 512, count: 1024)
        let diskboot = try [UInt8](Data(contentsOf: URL(fileURLWithPath: "/usr/lib/grub/i386-pc/diskboot.img")))
        #expect(Array(core[0..<0x100]) == Array(diskboot[0..<0x100]))
        #expect(DiskFile.getLE(core, at: 0x200 - 12, width: 8) == 2049)
        #expect(DiskFile.getLE(core, at: 0x200 - 4, width: 2) > 0)
        // The prefix is inside the compressed kernel: check what grub-mkimage was given.
        let log = try String(contentsOfFile: f.log, encoding: .utf8)
        #expect(log.contains("-p (,gpt3)/boot/grub biosdisk part_gpt ext2"))
        // Still a valid GPT afterwards.
        _ = try await f.sh("sfdisk", "--verify", disk)

        // The disk stays sparse.
        var st = stat()
        stat(disk, &st)
        #expect(st.st_blocks * 512 < 64 << 20)
    }

    @Test func equalTreesGiveEqualFilesystems() async throws {
        let f = try AssemblyFixture()
        defer { f.remove() }
        var sums: [String] = []
        for name in ["a.raw", "b.raw"] {
            try await f.run("org.osbuild.truncate", #"{"filename": "\#(name)", "size": "96 MiB"}"#)
            try await f.run("org.kiln.mkfs.fat", #"{"volid": "7B3A4C1D", "fat_size": 32, "source": "/boot/efi"}"#,
                            inputs: ["tree": .tree(f.tree)], devices: ["device": f.region(name, start: 2048, size: 81920)])
            try await f.run("org.kiln.mkfs.ext4", #"{"uuid": "\#(Self.rootFS)"}"#,
                            inputs: ["tree": .tree(f.tree)], devices: ["device": f.region(name, start: 83968, size: nil)])
            sums.append(try await f.sh("sha256sum", f.output + "/" + name).prefix(64).description)
            // The clock moves on (FAT times have a 2-second granularity) and the
            // first run's reads changed the tree's access times.
            try await Task.sleep(for: .milliseconds(2100))
        }
        #expect(sums[0] == sums[1])
    }

    @Test(arguments: [
        (#"{"type": "qcow2"}"#, "qcow2"),
        (#"{"type": "qcow2", "compat": "1.1", "compression": false}"#, "qcow2"),
        (#"{"type": "vmdk", "subformat": "streamOptimized"}"#, "vmdk"),
        (#"{"type": "vpc", "subformat": "fixed", "force_size": true}"#, "vpc"),
        (#"{"type": "raw"}"#, "raw"),
    ])
    func qemuConvertsToTheFormatAsked(format: String, expected: String) async throws {
        let f = try AssemblyFixture()
        defer { f.remove() }
        try await partitionedDisk(f)
        let source = f.output + "/disk.raw"
        try await f.run("org.osbuild.qemu", #"{"filename": "disk.img", "format": \#(format)}"#,
                        inputs: ["image": .files(["disk.raw": source])])
        // A fixed VHD is a raw image with a footer: qemu-img only recognises it when told.
        let info = try await f.sh("qemu-img", "info", "--output=json", "-f", expected, f.output + "/disk.img")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(info.utf8)) as? [String: Any])
        #expect(object["format"] as? String == expected)
        #expect(object["virtual-size"] as? Int == 256 << 20)
        if format.contains("streamOptimized") { #expect(info.contains("streamOptimized")) }
        // Converting back gives the same partition table.
        _ = try await f.sh("qemu-img", "convert", "-f", expected, "-O", "raw", f.output + "/disk.img", f.root + "/back.raw")
        let back = try await PartitionTableDump.read(f.root + "/back.raw", in: f.context(type: "test"))
        #expect(back.id == Self.diskUUID)
    }

    @Test func tarKeepsNumericOwnersLinksAndModes() async throws {
        let f = try AssemblyFixture()
        defer { f.remove() }
        try await f.run("org.osbuild.tar", #"{"filename": "tree.tar"}"#, inputs: ["tree": .tree(f.tree)])
        let listing = try await f.sh("tar", "--numeric-owner", "-tvf", f.output + "/tree.tar")
        let lines = listing.split(separator: "\n")
        #expect(lines.contains { $0.hasPrefix("-rw-r-----") && $0.contains("1000/1000") && $0.hasSuffix("./home/user/notes.txt") })
        #expect(lines.contains { $0.hasPrefix("lrwxrwxrwx") && $0.contains("0/0") && $0.hasSuffix("./bin -> usr/bin") })
        #expect(lines.contains { $0.hasPrefix("-rwxr-xr-x") && $0.hasSuffix("./usr/bin/hello") })
        #expect(lines.contains { $0.hasPrefix("hrwxr-xr-x") && $0.contains("link to") })
        #expect(lines.first?.hasSuffix(" ./") == true)

        try await f.run("org.osbuild.tar", #"{"filename": "omit.tar.zst", "root-node": "omit", "format": "gnu"}"#,
                        inputs: ["tree": .tree(f.tree)])
        let omitted = try await f.sh("tar", "--numeric-owner", "-tf", f.output + "/omit.tar.zst")
        #expect(omitted.split(separator: "\n").contains("bin"))
        #expect(!omitted.contains("./"))
    }

    @Test func badOptionsNameTheFieldAndTheFix() async throws {
        let f = try AssemblyFixture()
        defer { f.remove() }
        await #expect(throws: ManifestError.self) {
            try await f.run("org.osbuild.truncate", #"{"filename": "d.raw", "size": 1, "sparse": true}"#)
        }
        try await f.run("org.osbuild.truncate", #"{"filename": "d.raw", "size": "64 MiB"}"#)
        let error = await #expect(throws: AssemblyError.self) {
            try await f.run("org.kiln.mkfs.ext4", #"{"uuid": "not-a-uuid"}"#, inputs: ["tree": .tree(f.tree)],
                            devices: ["device": f.region("d.raw", start: 2048, size: nil)])
        }
        #expect(error?.description.contains("org.kiln.mkfs.ext4: options.uuid") == true)
        let outside = await #expect(throws: AssemblyError.self) {
            try await f.run("org.kiln.mkfs.fat", #"{"volid": "12345678"}"#,
                            devices: ["device": f.region("d.raw", start: 2048, size: 1 << 20)])
        }
        #expect(outside?.description.contains("outside the file") == true)
        let small = await #expect(throws: AssemblyError.self) {
            try await f.run("org.kiln.mkfs.fat", #"{"volid": "12345678", "fat_size": 32}"#,
                            devices: ["device": f.region("d.raw", start: 2048, size: 65536)])
        }
        #expect(small?.description.contains("make the partition larger") == true)
    }
}
