import Foundation
import KilnTestSupport
import Testing
@testable import Stages

/// Boots the fixture's kernel with the initramfs Kiln built under qemu (TCG):
/// udev, modules (virtio_blk), `root=UUID=` lookup and the switch to the root
/// filesystem must all work for the marker to appear on the serial console.
@Suite("org.kiln.initramfs boot", .serialized, .tags(.boot), .tier(.ci, .boot))
struct InitramfsBootTests {
    @Test("x86_64: the kernel finds root=UUID on virtio through Kiln's initramfs and runs its init", .timeLimit(.minutes(4)))
    func bootsAmd64() async throws {
        let tree = try InitramfsFixture.tree(arch: "amd64")
        defer { try? FileManager.default.removeItem(atPath: tree) }
        let context = try InitramfsFixture.context(tree: tree)
        defer { try? FileManager.default.removeItem(atPath: context.scratch) }
        try await InitramfsStage().run(.init(), in: context)
        let version = try InitramfsStageTests.kernelVersion(tree)

        // A root filesystem whose init prints a marker and powers off.
        for d in ["proc", "sys", "dev", "run", "tmp"] {
            try FileManager.default.createDirectory(atPath: tree + "/" + d, withIntermediateDirectories: true)
        }
        try "#!/bin/sh\necho KILN-ROOT-OK $(cat /proc/cmdline)\necho o > /proc/sysrq-trigger\nsleep 30\n"
            .write(toFile: tree + "/usr/sbin/kiln-test-init", atomically: true, encoding: .utf8)
        chmod(tree + "/usr/sbin/kiln-test-init", 0o755)
        let uuid = "6b1f3c2e-4d5a-4e6f-8a9b-0c1d2e3f4a5b"
        let image = context.scratch + "/root.img"
        try InitramfsFixture.run(["mkfs.ext4", "-q", "-d", tree, "-E", "root_owner=0:0", "-U", uuid, image, "512M"])

        let console = context.scratch + "/console.log"
        // On a thread of its own: a boot under TCG must not hold a cooperative thread.
        _ = try await runChild("/bin/sh", ["-c", """
            timeout 220 qemu-system-x86_64 -accel tcg -m 768 -nographic -no-reboot \
              -kernel "$1/boot/vmlinuz-$2" -initrd "$1/boot/initrd.img-$2" \
              -append "root=UUID=$3 ro console=ttyS0 init=/usr/sbin/kiln-test-init panic=-1" \
              -drive file="$4",if=virtio,format=raw > "$5" 2>&1 || true
            """, "sh", tree, version, uuid, image, console])
        let log = String(decoding: FileManager.default.contents(atPath: console) ?? Data(), as: UTF8.self)
        let booted = log.contains("KILN-ROOT-OK")
        #expect(booted, "no marker on the console; last lines:\n\(log.split(separator: "\n").suffix(30).joined(separator: "\n"))")
    }
}
