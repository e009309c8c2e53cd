import Foundation
import Images
import KilnTestSupport
import Logging
import Manifest
import Scheduler
import Stages
import Testing

/// Real x86_64 builds against the Debian mirror (packages come from the warm
/// source cache in /var/cache/kiln/sources when present) into the run's tree
/// store, checked in the built tree and booted under qemu. Serialized, beside
/// `AArch64ImageTests`; more of this suite is in ImageTypeTests.swift,
/// DiskTests.swift, KitchenSinkTests.swift and EmbeddedBuildTests.swift.
@Suite(.serialized, .tags(.system), .tier(.ci, .system))
struct X86ImageTests: SystemImages {
    @Test func qcow2BuildHasTheCustomizationsAndRebuildsFromCache() async throws {
        let exec = try executor()
        let manifest = try await ManifestGenerator(resolver: Depsolver()).manifest(for: request(type: "qcow2"))
        let first = try await exec.run(manifest, exports: ["os", "qcow2"])
        let tree = try #require(first.exports["os"])

        // The blueprint's customizations, as a user would check them in the image.
        #expect(read(tree, "/etc/hostname") == "kiln-test\n")
        #expect(read(tree, "/etc/passwd").contains("alice:x:1234:"))
        #expect(read(tree, "/etc/passwd").contains(":/home/alice:/bin/bash"))
        #expect(read(tree, "/etc/shadow").contains("alice:$6$kilnkiln$"))
        #expect(read(tree, "/etc/group").contains("builders:x:2345:alice"))
        #expect(read(tree, "/etc/group").split(separator: "\n").contains { $0.hasPrefix("sudo:") && $0.contains("alice") })
        let keys = tree + "/home/alice/.ssh/authorized_keys"
        #expect(read(tree, "/home/alice/.ssh/authorized_keys").contains("alice@kiln-test"))
        let attrs = try FileManager.default.attributesOfItem(atPath: keys)
        #expect((attrs[.posixPermissions] as? Int) == 0o600)
        #expect((attrs[.ownerAccountID] as? Int) == 1234)
        let wants = try FileManager.default.destinationOfSymbolicLink(atPath: tree + "/etc/systemd/system/multi-user.target.wants/ssh.service")
        #expect(wants.hasSuffix("/ssh.service"))
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: tree + "/etc/systemd/system/apt-daily.timer") == "/dev/null")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: tree + "/etc/localtime").hasSuffix("Europe/Berlin"))
        #expect(read(tree, "/etc/machine-id") == "uninitialized\n", "no machine ID baked in: systemd generates one at first boot")

        // It boots to the login prompt under UEFI: in the full tier only, since
        // the kitchen sink's qcow2 boots under UEFI in every tier.
        if TestTier.runs(.full, tags: [.boot]) {
            try await boots(try #require(first.exports["qcow2"]) + "/disk.qcow2", firmware: "uefi")
        }

        // Building the same blueprint again runs no stage.
        let again = try await exec.run(manifest, exports: ["qcow2"])
        #expect(again.stagesRun.isEmpty)
        #expect(again.cached == ["qcow2"], "the exported image comes straight from the store")

        // Changing only the hostname resumes after package installation.
        let renamed = try await ManifestGenerator(resolver: Depsolver()).manifest(for: request(type: "qcow2", hostname: "renamed"))
        let third = try await exec.run(renamed, exports: ["os"])
        #expect(!third.stagesRun.contains("os/org.kiln.debian.install"), "the package checkpoint is reused: \(third.stagesRun)")
        #expect(third.stagesRun.contains("os/org.osbuild.hostname"))
        #expect(read(third.exports["os"]!, "/etc/hostname") == "renamed\n")
    }

    @Test(.tags(.boot), .tier(.ci, .boot)) func rawBuildBootsUnderBIOS() async throws {
        let manifest = try await ManifestGenerator(resolver: Depsolver()).manifest(for: request(type: "raw"))
        let result = try await executor().run(manifest, exports: ["image"])
        let image = try #require(result.exports["image"]) + "/disk.raw"
        let (status, output) = try await bootTest(image, firmware: "bios")
        #expect(status == 0, "boot-test failed:\n\(output)")
    }

    // qcow2 boots under UEFI, and is checked from inside over SSH, in the
    // kitchen-sink tests (KitchenSinkTests.swift).
}
