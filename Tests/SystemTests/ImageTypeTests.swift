import Foundation
import Images
import KilnTestSupport
import Manifest
import Stages
import Testing

/// Every image type, built for real from the system-test blueprint into the
/// run's store (types with the same package set share the package
/// checkpoint), checked with the tools that consume it, and booted when it is
/// a VM disk (each such type once, on x86_64; the full tier boots the ones CI
/// only checks, docs/testing.md lists them).
extension X86ImageTests {
    /// CI checks the xz stream and the package set; the vmdk, whose package
    /// set has no cloud-init either, boots under UEFI in CI, and the zstd
    /// test below checks that this file decompresses to a whole disk. The
    /// full tier boots it.
    @Test("x86_64: minimal-raw (.raw.xz) is an xz stream of a disk without cloud-init (booted under UEFI in the full tier)",
          .tags(.boot), .tier(.ci, .boot))
    func minimalRaw() async throws {
        let (xz, tree) = try await build(.minimalRaw)
        _ = try await run(["xz", "-t", xz])
        #expect(dataSources(tree) == nil, "minimal-raw has no cloud-init")
        #expect(!FileManager.default.fileExists(atPath: tree + "/usr/bin/cloud-init"))
        if TestTier.current >= .full { try await boots(xz, firmware: "uefi") }
    }

    /// CI checks that the zstd file holds the same disk layout as the xz one
    /// (that one boots above); the full tier boots it under BIOS as well.
    @Test("x86_64: minimal-raw-zst decompresses to minimal-raw's disk layout (booted under BIOS in the full tier)")
    func minimalRawZstd() async throws {
        let (xz, _) = try await build(.minimalRaw)
        let (zst, _) = try await build(.minimalRawZstd)
        _ = try await run(["zstd", "-qt", zst])
        let dir = "\(Self.storeRoot)/minimal-raw-zst-check"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        _ = try await run(["sh", "-c", "xz -dc \"$1\" > \"$2/xz.raw\" && zstd -qdc \"$3\" > \"$2/zst.raw\"", "sh", xz, dir, zst])
        #expect(try size(dir + "/xz.raw") == size(dir + "/zst.raw"), "both are the whole disk")
        let layout = { (disk: String) async throws -> [String] in
            // Partition starts, sizes and types; the UUIDs differ from build to build.
            try await self.run(["sfdisk", "--dump", disk]).split(separator: "\n")
                .filter { $0.contains(" : start=") }
                .map { line in line.split(separator: ",").filter { !$0.contains("uuid=") }.joined(separator: ",")
                    .replacingOccurrences(of: dir + "/xz.raw", with: "disk").replacingOccurrences(of: dir + "/zst.raw", with: "disk") }
        }
        let xzLayout = try await layout(dir + "/xz.raw")
        #expect(!xzLayout.isEmpty)
        #expect(try await layout(dir + "/zst.raw") == xzLayout)
        if TestTier.current >= .full {
            try await boots(zst, firmware: "bios")
        }
    }

    /// Off the cloud, the EC2 and GCE data sources wait minutes for a
    /// metadata service that never answers, so CI checks these two in the
    /// image and the full tier boots them; the BIOS and UEFI paths of the same
    /// disk layout boot in CI through raw and qcow2.
    @Test("x86_64: ami is a raw disk with the EC2 data source; gce is a gzip'd tar of disk.raw with the GCE one (both booted in the full tier)")
    func amiAndGce() async throws {
        let (ami, amiTree) = try await build(.ami)
        #expect(try await qemuInfo(ami)["format"] as? String == "raw")
        #expect(try size(ami) == 8 << 30)
        #expect(dataSources(amiTree)?.contains("datasource_list: [Ec2]\n") == true)
        if TestTier.current >= .full { try await boots(ami, firmware: "bios") }

        let (gce, gceTree) = try await build(.gce)
        #expect(try await run(["tar", "-tzf", gce]) == "disk.raw\n", "GCE wants exactly disk.raw")
        #expect(try await run(["tar", "-tzvf", gce]).contains(" \(10 << 30) "), "disk.raw is the whole 10 GiB disk")
        #expect(dataSources(gceTree)?.contains("datasource_list: [GCE]\n") == true)
        if TestTier.current >= .full { try await boots(gce, firmware: "uefi") }
    }
}

/// The x86_64 vmdk, ova, vhd, tar and container run in the aarch64 lane: the
/// two lanes then take about as long as each other (see docs/testing.md), and
/// the run is as short as the longer of them.
extension AArch64ImageTests {
    @Test("x86_64: vhd is a fixed VHD of whole MiB for Azure with its data source, and boots", .tags(.boot), .tier(.ci, .boot))
    func vhd() async throws {
        let (vhd, tree) = try await build(.vhd)
        let info = try await qemuInfo(vhd, format: "vpc")
        let virtual = try #require(info["virtual-size"] as? Int64)
        #expect(virtual % (1 << 20) == 0, "Azure wants the virtual size in whole MiB: \(virtual)")
        #expect(try size(vhd) == virtual + 512, "a fixed VHD is the disk plus a 512-byte footer")
        let footer = try FileHandle(forReadingFrom: URL(fileURLWithPath: vhd))
        try footer.seek(toOffset: UInt64(virtual))
        #expect(String(decoding: try footer.read(upToCount: 8) ?? Data(), as: UTF8.self) == "conectix")
        try footer.close()
        #expect(dataSources(tree)?.contains("datasource_list: [Azure]\n") == true)
        #expect(read(tree, "/etc/kernel/cmdline").contains("earlyprintk=ttyS0"))
        try await boots(vhd, firmware: "uefi")
    }

    @Test("x86_64: tar is the root filesystem without kernel; container is a valid OCI archive whose layer runs")
    func tarAndContainer() async throws {
        let (tar, _) = try await build(.tar)
        let listing = try await run(["tar", "--zstd", "-tf", tar]).split(separator: "\n")
        #expect(listing.contains("./etc/hostname"))
        #expect(listing.contains("./usr/bin/bash"))
        #expect(!listing.contains { $0.hasPrefix("./boot/vmlinuz") }, "no kernel in a tar image")
        try await container(arch: "x86_64", runLayer: true)
    }
    @Test("x86_64: vmdk is streamOptimized and boots; ova holds descriptor, manifest and a streamOptimized disk in order (booted in the full tier)", .tags(.boot), .tier(.ci, .boot))
    func vmdkAndOva() async throws {
        let (vmdk, tree) = try await build(.vmdk)
        let info = try await qemuInfo(vmdk)
        #expect(info["format"] as? String == "vmdk")
        #expect(((info["format-specific"] as? [String: Any])?["data"] as? [String: Any])?["create-type"] as? String == "streamOptimized")
        #expect(dataSources(tree) == nil, "vmdk has no cloud-init")
        try await boots(vmdk, firmware: "uefi")

        let (ova, _) = try await build(.ova)
        #expect(try await run(["tar", "-tf", ova]).split(separator: "\n") == ["image.ovf", "image.mf", "image.vmdk"])
        let dir = "\(Self.storeRoot)/ova-check"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        _ = try await run(["tar", "-xf", ova, "-C", dir])
        // The manifest's digests are the files' digests.
        let sums = try await run(["sha256sum", "\(dir)/image.ovf", "\(dir)/image.vmdk"]).split(separator: "\n")
            .map { $0.split(separator: " ").first.map(String.init) ?? "" }
        #expect(read(dir + "/image.mf", "") == "SHA256(image.ovf)= \(sums[0])\nSHA256(image.vmdk)= \(sums[1])\n")
        // The descriptor is well-formed XML whose disk capacity is the VMDK's virtual size.
        let ovf = read(dir + "/image.ovf", "")
        _ = try await run(["xmllint", "--noout", dir + "/image.ovf"])
        let virtual = try #require((try await qemuInfo(dir + "/image.vmdk"))["virtual-size"] as? Int64)
        #expect(ovf.contains("ovf:capacity=\"\(virtual)\""))
        #expect(ovf.contains("ovf:href=\"image.vmdk\" ovf:id=\"file1\" ovf:size=\"\(try size(dir + "/image.vmdk"))\""))
        #expect(ovf.contains("vmw:osType=\"debian12_64Guest\""))
        let inner = try await qemuInfo(dir + "/image.vmdk")
        #expect(((inner["format-specific"] as? [String: Any])?["data"] as? [String: Any])?["create-type"] as? String == "streamOptimized")
        if TestTier.current >= .full { try await boots(ova, firmware: "bios") }
    }
}
