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
    /// The system-test blueprint is in the shape composer users write (no SSH
    /// server asked for, a key for root): on debian-13 as a qcow2, root logs
    /// in with that key and the first boot, with no cloud-init data source
    /// attached, is `running` with no failed unit.
    @Test("x86_64 debian-13: a composer-shaped blueprint's qcow2 has its customizations, boots to running, root logs in with its key; rebuilds from cache",
          .tags(.boot), .tier(.ci, .boot))
    func qcow2BuildHasTheCustomizationsAndRebuildsFromCache() async throws {
        let exec = try executor()
        let manifest = try await ManifestGenerator(resolver: Depsolver()).manifest(for: request(type: "qcow2", distro: "debian-13"))
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
        #expect(read(tree, "/root/.ssh/authorized_keys").contains(SystemKey.publicKey))
        #expect(FileManager.default.fileExists(atPath: tree + "/usr/sbin/sshd"), "every VM type has an SSH server, asked for or not")
        let wants = try FileManager.default.destinationOfSymbolicLink(atPath: tree + "/etc/systemd/system/multi-user.target.wants/ssh.service")
        #expect(wants.hasSuffix("/ssh.service"))
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: tree + "/etc/systemd/system/apt-daily.timer") == "/dev/null")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: tree + "/etc/localtime").hasSuffix("Europe/Berlin"))
        #expect(read(tree, "/etc/machine-id") == "uninitialized\n", "no machine ID baked in: systemd generates one at first boot")
        #expect(dataSources(tree)?.contains("datasource_list: [NoCloud, ConfigDrive]\n") == true, "ds-identify reads this line")
        #expect(FileManager.default.fileExists(atPath: tree + "/usr/bin/tmux") && FileManager.default.fileExists(atPath: tree + "/usr/bin/git"))

        // UEFI boot with no data source: root logs in with the key, running, no failed unit.
        try await boots(try #require(first.exports["qcow2"]) + "/disk.qcow2", firmware: "uefi")

        // Building the same blueprint again runs no stage.
        let again = try await exec.run(manifest, exports: ["qcow2"])
        #expect(again.stagesRun.isEmpty)
        #expect(again.cached == ["qcow2"], "the exported image comes straight from the store")

        // Changing only the hostname resumes after package installation.
        let renamed = try await ManifestGenerator(resolver: Depsolver()).manifest(for: request(type: "qcow2", hostname: "renamed", distro: "debian-13"))
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

    // The kitchen sink's qcow2 is checked from inside over SSH in
    // KitchenSinkTests.swift, the talk's demo in DemoTests.swift.
}
