import Foundation
import Images
import KilnTestSupport
import Manifest
import Stages
import Testing

/// aarch64 images, built on this x86_64 host under qemu-user emulation into
/// the run's store. Serialized, and run beside `X86ImageTests`: the emulated
/// package installation is the longest work of a run, so it starts at once
/// and overlaps the x86_64 builds and boots.
@Suite(.serialized, .tags(.system), .tier(.ci, .system))
struct AArch64ImageTests: SystemImages {
    /// The system-test blueprint's qcow2 boots under UEFI (AAVMF); root logs
    /// in with the tests' key and the system is `running`. First in the
    /// lane: its emulated package installation is the longest work of a run,
    /// and every aarch64 type after it starts from that tree.
    @Test("aarch64 debian-12: the qcow2 boots under UEFI to running, root logs in with its key", .tags(.boot), .tier(.ci, .boot))
    func qcow2Boots() async throws {
        let (image, tree) = try await build(.qcow2, arch: "aarch64")
        #expect(FileManager.default.fileExists(atPath: tree + "/boot/efi/EFI/BOOT/BOOTAA64.EFI"))
        #expect(dataSources(tree)?.contains("datasource_list: [NoCloud, ConfigDrive]\n") == true)
        try await boots(image, firmware: "uefi", arch: "aarch64")
    }

    /// The types whose aarch64 image is more than an x86_64-tested conversion
    /// of the aarch64 raw disk are built in CI: raw (the disk), minimal-raw
    /// (its own package set), tar and container (their own pipelines). The
    /// others (ami, gce, vhd, vmdk, minimal-raw-zst) convert that same disk
    /// with the stages the x86_64 lane checks; the full tier builds them too.
    static let typesInCI: Set<ImageType> = [.raw, .minimalRaw, .tar, .container]

    /// Every type aarch64 has but qcow2 (above), built under emulation and
    /// checked structurally; the types share the package checkpoints.
    @Test("aarch64: raw, minimal-raw, tar and container build (every other type in the full tier)")
    func aarch64Types() async throws {
        for type in ImageType.allCases where type.architectures.contains(.aarch64) && type != .qcow2 {
            guard Self.typesInCI.contains(type) || TestTier.current >= .full else { continue }
            if type == .container {
                try await container(arch: "aarch64", runLayer: false)
                continue
            }
            let (image, tree) = try await build(type, arch: "aarch64")
            #expect(try size(image) > 10 << 20, "\(type): \(image) is too small")
            if type.isDisk {
                #expect(FileManager.default.fileExists(atPath: tree + "/boot/efi/EFI/BOOT/BOOTAA64.EFI"), "\(type)")
            }
            #expect((dataSources(tree) != nil) == (type.cloudInitDataSources != nil), "\(type)")
        }
    }

    /// Full tier: the kitchen sink's customizations are checked from inside
    /// on x86_64 in CI, and aarch64 boots there with the qcow2 above.
    @Test("aarch64 debian-12: the kitchen sink boots under UEFI and has every customization", .tags(.boot), .tier(.full, .boot))
    func kitchenSinkBookworm() async throws {
        try await checkKitchenSink(distro: "debian-12", arch: "aarch64")
    }

    /// Full tier: trixie on aarch64 runs every maintainer script emulated
    /// (about ten minutes for the tree alone).
    @Test("aarch64 debian-13: the kitchen sink boots under UEFI and has every customization",
          .tags(.boot), .tier(.full, .boot))
    func kitchenSinkTrixie() async throws {
        try await checkKitchenSink(distro: "debian-13", arch: "aarch64")
    }
}
