import Foundation
import Testing
@testable import Stages

@Suite("ELF reader")
struct ELFFileTests {
    @Test("reads a host x86_64 binary: interpreter and needed libraries")
    func hostBinary() throws {
        let elf = try #require(try ELFFile(path: "/usr/bin/ls"))
        #expect(elf.machine == ELFFile.machineX86_64)
        #expect(elf.littleEndian)
        #expect(elf.interpreter == "/lib64/ld-linux-x86-64.so.2")
        #expect(elf.needed.contains("libc.so.6"))
        #expect(elf.needed.contains("libselinux.so.1"))
    }

    @Test("a shell script is not ELF")
    func script() throws {
        #expect(try ELFFile(path: "/usr/bin/ldd") == nil)
    }

    @Test("truncated headers are rejected with the path")
    func truncated() throws {
        var data = try #require(FileManager.default.contents(atPath: "/usr/bin/ls"))
        data = data.prefix(200)
        #expect(throws: ELFError.self) { try ELFFile(data: data, path: "ls-truncated") }
    }

    @Test("reads aarch64 binaries from a bookworm arm64 package: busybox, udevadm's libraries")
    func arm64() throws {
        let tree = try InitramfsFixture.tree(arch: "arm64")
        defer { try? FileManager.default.removeItem(atPath: tree) }
        let view = TreeView(root: tree)
        let busybox = try #require(try ELFFile(path: view.host(try view.resolve("/bin/busybox"))))
        #expect(busybox.machine == ELFFile.machineAArch64)
        #expect(busybox.interpreter == "/lib/ld-linux-aarch64.so.1")
        #expect(busybox.needed.contains("libc.so.6"))
        let closure = try #require(try LibraryResolver(tree: view, machine: ELFFile.machineAArch64).closure(of: "/bin/udevadm"))
        #expect(closure.contains("/lib/ld-linux-aarch64.so.1"))
        #expect(closure.contains { $0.hasSuffix("/aarch64-linux-gnu/libc.so.6") })
        #expect(closure.contains { $0.hasSuffix("/libkmod.so.2") })
        #expect(BusyboxApplets.names(in: try #require(view.read("/bin/busybox"))).contains("sh"))
    }
}
