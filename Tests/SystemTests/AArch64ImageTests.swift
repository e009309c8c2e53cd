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
    /// The kitchen sink on bookworm: its qcow2 boots under UEFI (AAVMF) and is
    /// checked over SSH. debian-12 is the release whose aarch64 trees are
    /// cheap here (host tools do the architecture-independent work).
    @Test("aarch64 debian-12: the kitchen sink boots under UEFI and has every customization", .tags(.boot), .tier(.ci, .boot))
    func kitchenSinkBookworm() async throws {
        try await checkKitchenSink(distro: "debian-12", arch: "aarch64")
    }

    /// Every type aarch64 has but qcow2 (above), built under emulation and
    /// checked structurally; the types share the package checkpoints.
    @Test("aarch64: every image type builds")
    func aarch64Types() async throws {
        for type in ImageType.allCases where type.architectures.contains(.aarch64) && type != .qcow2 {
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

    /// Full tier: trixie on aarch64 runs every maintainer script emulated
    /// (about ten minutes for the tree alone).
    @Test("aarch64 debian-13: the kitchen sink boots under UEFI and has every customization",
          .tags(.boot), .tier(.full, .boot))
    func kitchenSinkTrixie() async throws {
        try await checkKitchenSink(distro: "debian-13", arch: "aarch64")
    }
}
