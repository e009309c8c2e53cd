import Foundation
import KilnTestSupport
@testable import Stages
import Synchronization
import Testing

/// TreeArchive with real libarchive and zstd: a tree with every kind of
/// entry survives a round trip unchanged, and archives that try to write
/// outside their target are refused without writing there.
@Suite struct TreeArchiveTests {
    /// A scratch directory removed when the test ends.
    final class Scratch {
        let path: String
        init() throws {
            path = "/var/tmp/kiln-archive-test-\(UUID().uuidString.prefix(8).lowercased())"
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        }
        func directory(_ name: String) throws -> String {
            let p = "\(path)/\(name)"
            try FileManager.default.createDirectory(atPath: p, withIntermediateDirectories: true)
            return p
        }
        deinit { try? FileManager.default.removeItem(atPath: path) }
    }

    /// Archives `tree` into a file and returns its bytes.
    static func archive(_ tree: String, compression: TreeArchive.Compression = .default) async throws -> (Data, TreeArchive.WriteStats) {
        let collected = Mutex(Data())
        let stats = try await TreeArchive.write(tree: tree, compression: compression) { bytes in
            collected.withLock { $0.append(contentsOf: bytes) }
        }
        return (collected.withLock { $0 }, stats)
    }

    /// Extracts `bytes` into `target`, handing them over in pieces of `piece` bytes.
    static func extract(_ bytes: Data, into target: String, piece: Int = 65536) async throws -> TreeArchive.ExtractStats {
        let offset = Mutex(0)
        return try await TreeArchive.extract(into: target) { buffer in
            offset.withLock { at in
                let n = min(piece, buffer.count, bytes.count - at)
                bytes.copyBytes(to: buffer, from: at..<(at + n))
                at += n
                return n
            }
        }
    }

    @Test func roundTripKeepsEveryKindOfEntry() async throws {
        let scratch = try Scratch()
        let source = try scratch.directory("source"), target = try scratch.directory("target")
        try await TreeFixture.makeRich(at: source, filler: 3 << 20)
        let (bytes, written) = try await Self.archive(source)
        let directory = FileManager.default.currentDirectoryPath
        let extracted = try await Self.extract(bytes, into: target)
        #expect(FileManager.default.currentDirectoryPath == directory, "only the extraction thread entered the target")

        let expected = try await TreeFixture.fingerprint(source)
        let got = try await TreeFixture.fingerprint(target)
        #expect(got == expected)
        #expect(expected.count > 30)
        // The fixture really has what the test claims to cover.
        for needle in ["xattr:security.capability", "xattr:system.posix_acl_access", "xattr:system.posix_acl_default",
                       "chr 1:3", "blk 8:0", "fifo", "holes", "group=usr/bin/tool", "2500000:3000000", "0o4755"] {
            #expect(expected.contains { $0.contains(needle) }, "fixture lacks \(needle)")
        }
        #expect(got.filter { $0.contains("holes") }.count == 2, "sparse files come back sparse")
        #expect(written.entries == extracted.entries)
        #expect(written.treeBytes == extracted.treeBytes)
        #expect(written.archiveBytes == UInt64(bytes.count))
        // 136 MiB of sparse files and 3 MiB of half-repeating data: the holes are not stored.
        #expect(bytes.count < 4 << 20)
    }

    @Test func sameTreeGivesSameBytes() async throws {
        let scratch = try Scratch()
        let source = try scratch.directory("source")
        try await TreeFixture.makeRich(at: source)
        let (first, _) = try await Self.archive(source)
        let (second, _) = try await Self.archive(source, compression: .init(level: TreeArchive.Compression.default.level, threads: 0))
        #expect(first == second, "entry order and headers are deterministic, whatever the thread count")
    }

    /// Tar files that try to escape, made with Python's tarfile and zstd.
    static let escapes: [(name: String, program: String)] = [
        ("dotdot", "add(tarfile.TarInfo('ok')); add(reg('../escaped'))"),
        ("nested-dotdot", "add(reg('a/../../escaped'))"),
        ("absolute", "add(reg(OUTSIDE + '/absolute'))"),
        ("through-symlink", "add(sym('link', OUTSIDE)); add(reg('link/escaped'))"),
        ("hardlink-out", "add(hard('h', '../victim'))"),
        ("hardlink-absolute", "add(hard('h', OUTSIDE + '/victim'))"),
    ]

    @Test(arguments: escapes.map(\.name))
    func escapingArchiveIsRefused(_ name: String) async throws {
        let scratch = try Scratch()
        let parent = try scratch.directory("parent")
        let target = try scratch.directory("parent/target"), outside = try scratch.directory("outside")
        try Data("precious".utf8).write(to: URL(fileURLWithPath: "\(parent)/victim"))
        let program = Self.escapes.first { $0.name == name }!.program
        let tar = "\(scratch.path)/evil.tar"
        try await TreeFixture.run(["python3", "-c", """
            import io, sys, tarfile
            OUTSIDE = sys.argv[2]
            t = tarfile.open(sys.argv[1], 'w', format=tarfile.PAX_FORMAT)
            def reg(n, data=b'evil'):
                i = tarfile.TarInfo(n); i.size = len(data); return i, io.BytesIO(data)
            def sym(n, target):
                i = tarfile.TarInfo(n); i.type = tarfile.SYMTYPE; i.linkname = target; return i, None
            def hard(n, target):
                i = tarfile.TarInfo(n); i.type = tarfile.LNKTYPE; i.linkname = target; return i, None
            def add(x):
                (i, f) = x if isinstance(x, tuple) else (x, None)
                t.addfile(i, f)
            \(program)
            t.close()
            """, tar, outside])
        try await TreeFixture.run(["zstd", "-q", "-f", tar, "-o", tar + ".zst"])
        let bytes = try Data(contentsOf: URL(fileURLWithPath: tar + ".zst"))

        await #expect {
            _ = try await Self.extract(bytes, into: target)
        } throws: { error in
            guard case TreeArchiveError.escapes(_, let reason) = error else { return false }
            return !reason.isEmpty && "\(error)".contains("outside its target directory")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: outside).isEmpty, "nothing written outside")
        #expect(try FileManager.default.contentsOfDirectory(atPath: parent).sorted() == ["target", "victim"])
        #expect(try String(contentsOfFile: "\(parent)/victim", encoding: .utf8) == "precious")
    }

    @Test func truncatedArchiveFailsCleanly() async throws {
        let scratch = try Scratch()
        let source = try scratch.directory("source"), target = try scratch.directory("target")
        try await TreeFixture.makeRich(at: source, filler: 1 << 20)
        let (bytes, _) = try await Self.archive(source)
        await #expect(throws: TreeArchiveError.self) {
            _ = try await Self.extract(bytes.prefix(bytes.count / 2), into: target)
        }
        await #expect(throws: TreeArchiveError.self) {
            _ = try await Self.extract(Data(repeating: 7, count: 4096), into: target)
        }
    }

    /// Extraction decompresses with pooled zstd contexts (not libarchive's
    /// filter): a stream of several frames reads as one, and a context that
    /// a truncated stream left mid-frame decodes the next stream correctly.
    @Test func severalFramesAndReusedDecodersGiveTheSameTree() async throws {
        let scratch = try Scratch()
        let source = try scratch.directory("source")
        try await TreeFixture.makeRich(at: source, filler: 1 << 20)
        let (bytes, _) = try await Self.archive(source)
        let expected = try await TreeFixture.fingerprint(source)
        let whole = "\(scratch.path)/whole.tar.zst"
        try bytes.write(to: URL(fileURLWithPath: whole))
        try await TreeFixture.run(["sh", "-c", """
            set -e; cd "$1"; zstd -q -dc whole.tar.zst > plain.tar; n=$(( $(stat -c %s plain.tar) / 3 ))
            head -c "$n" plain.tar | zstd -q > a.zst; tail -c +"$(( n + 1 ))" plain.tar | zstd -q -3 > b.zst
            cat a.zst b.zst > frames.tar.zst
            """, "sh", scratch.path])
        let frames = try Data(contentsOf: URL(fileURLWithPath: "\(scratch.path)/frames.tar.zst"))
        let multi = try scratch.directory("multi")
        _ = try await Self.extract(frames, into: multi)
        #expect(try await TreeFixture.fingerprint(multi) == expected)
        for round in 0..<10 {
            await #expect(throws: TreeArchiveError.self) {
                _ = try await Self.extract(bytes.prefix(bytes.count / 2), into: try scratch.directory("cut-\(round)"))
            }
            let target = try scratch.directory("round-\(round)")
            _ = try await Self.extract(bytes, into: target, piece: 4096 + round * 999)
            #expect(try await TreeFixture.fingerprint(target) == expected, "round \(round)")
        }
    }

    struct Broken: Error {}

    @Test func failingInputAndOutputAreReported() async throws {
        let scratch = try Scratch()
        let source = try scratch.directory("source"), target = try scratch.directory("target")
        try await TreeFixture.makeRich(at: source, filler: 2 << 20)
        await #expect {
            _ = try await TreeArchive.write(tree: source) { _ in throw Broken() }
        } throws: { error in
            if case TreeArchiveError.output = error { return true }
            return false
        }
        await #expect {
            _ = try await TreeArchive.extract(into: target) { _ in throw Broken() }
        } throws: { error in
            if case TreeArchiveError.input = error { return true }
            return false
        }
        await #expect(throws: TreeArchiveError.self) {
            _ = try await TreeArchive.write(tree: "\(scratch.path)/missing") { _ in }
        }
    }

    /// `--store store` from the daemons' working directory: the store's root
    /// is made absolute, so every extraction lands in it, not only the first
    /// one on a thread (which left the thread in "/"). A relative target
    /// reaching the extractor is refused rather than resolved against "/".
    @Test func relativeStoreRootBecomesAbsolute() async throws {
        let scratch = try Scratch()
        let relative = String(scratch.path.dropFirst())  // from "/": the tests run in a checkout, not in "/"
        let store = try TreeStore(root: "../../../../../../../../../../" + relative + "/store")
        #expect(store.root.hasPrefix("/"))
        #expect(FileManager.default.fileExists(atPath: "\(scratch.path)/store/tmp"), "the store's directories are where the path says")
        let source = try scratch.directory("source")
        try TreeFiles.write("kiln\n", to: "/etc/hostname", in: source)
        let (bytes, _) = try await Self.archive(source)
        for n in 1...3 {
            let target = "\(store.root)/tmp/t\(n)"
            try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
            _ = try await Self.extract(bytes, into: target)
            #expect(FileManager.default.contents(atPath: "\(target)/etc/hostname") == Data("kiln\n".utf8))
        }
        await #expect {
            _ = try await Self.extract(bytes, into: "tmp/t1")
        } throws: { error in
            if case TreeArchiveError.badTarget(_, let reason) = error { return reason == "not an absolute path" }
            return false
        }
    }
}
