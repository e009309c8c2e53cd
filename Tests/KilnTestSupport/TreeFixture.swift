import Foundation

/// Trees for archive and streaming tests, made and compared by a short
/// Python program (Swift's Glibc module has no xattr calls), as root.
package enum TreeFixture {
    /// Fills the empty directory `root` with every kind of entry a tree
    /// stream must keep: nested directories with odd modes and owners,
    /// setuid and sticky bits, large ids, hard links (three names), relative
    /// and absolute symlinks, a character and a block device, a fifo, user
    /// and security xattrs, an access and a default ACL, sparse files (a
    /// hole in the middle, a hole at the end), non-ASCII and very long names,
    /// empty files, sub-second mtimes, and `filler` bytes of pseudo-random
    /// files (more chunks to stream).
    package static func makeRich(at root: String, filler: Int = 0) async throws {
        try await python(richTree, [root, String(filler)])
    }

    /// One line per entry (sorted): type, mode, owner, mtime, size, content
    /// digest, link target, device number, xattrs (ACLs included), the
    /// entry's hard-link group, and whether a big file has holes.
    package static func fingerprint(_ root: String) async throws -> [String] {
        try await python(walk, [root]).split(separator: "\n").map(String.init)
    }

    /// Runs `argv`; returns stdout, or throws with stderr when it fails.
    @discardableResult
    package static func run(_ argv: [String]) async throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = argv
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        let status: Int32 = try await withCheckedThrowingContinuation { done in
            process.terminationHandler = { done.resume(returning: $0.terminationStatus) }
            do { try process.run() } catch { done.resume(throwing: error) }
        }
        let stdout = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        guard status == 0 else { throw Failed(command: argv.prefix(3).joined(separator: " "), status: status, stderr: stderr) }
        return stdout
    }

    package struct Failed: Error, CustomStringConvertible {
        let command: String
        let status: Int32
        let stderr: String
        package var description: String { "\(command) exited \(status): \(stderr)" }
    }

    @discardableResult
    private static func python(_ program: String, _ arguments: [String]) async throws -> String {
        try await run(["python3", "-c", program] + arguments)
    }

    private static let richTree = #"""
import os, random, struct, sys
root, filler = sys.argv[1], int(sys.argv[2])
rnd = random.Random(42)
os.chmod(root, 0o750); os.chown(root, 0, 4)
def p(*parts): return os.path.join(root, *parts)
def write(rel, data, mode=0o644, owner=(0, 0)):
    with open(p(rel), "wb") as f: f.write(data)
    os.chown(p(rel), *owner); os.chmod(p(rel), mode)
for d, mode, owner in [("etc", 0o755, (0, 0)), ("home", 0o755, (0, 0)), ("home/user", 0o700, (1000, 1000)),
                       ("srv", 0o2775, (33, 3000000)), ("tmp", 0o1777, (0, 0)), ("usr", 0o755, (0, 0)),
                       ("usr/bin", 0o755, (0, 0)), ("var", 0o755, (0, 0)), ("var/big", 0o755, (0, 0)),
                       ("empty-dir", 0o555, (2, 2)), ("dévelopment ünïcode", 0o755, (0, 0))]:
    os.mkdir(p(d)); os.chown(p(d), *owner); os.chmod(p(d), mode)
write("etc/hostname", b"kiln\n")
write("etc/shadow", b"root:*:19000:0:99999:7:::\n", 0o640, (0, 42))
write("usr/bin/tool", bytes(rnd.getrandbits(8) for _ in range(70000)), 0o4755)
write("usr/bin/sgid", b"#!/bin/sh\n", 0o2711, (0, 5))
write("home/user/notes", b"x" * 5000, 0o600, (1000, 1000))
write("srv/big-ids", b"ids beyond ustar's 7 octal digits\n", 0o664, (2500000, 3000000))
write("empty", b"", 0o000)
write("dévelopment ünïcode/fïle ✓", b"unicode\n")
long = "/".join(["d" * 60] * 5)
os.makedirs(p("var", long)); write(os.path.join("var", long, "f" * 200), b"deep and long\n")
os.link(p("usr/bin/tool"), p("usr/bin/tool-link")); os.link(p("usr/bin/tool"), p("var/tool-third-name"))
os.symlink("tool", p("usr/bin/relative")); os.symlink("/etc/passwd", p("etc/absolute"))
os.symlink("../nowhere/dangling", p("etc/dangling")); os.lchown(p("etc/dangling"), 7, 8)
os.mknod(p("null"), 0o20666, os.makedev(1, 3)); os.mknod(p("sda"), 0o60660, os.makedev(8, 0)); os.chown(p("sda"), 0, 6)
os.mkfifo(p("fifo"), 0o620)
os.setxattr(p("usr/bin/tool"), "security.capability",
            bytes.fromhex("0100000200200000000000000000000000000000"))
os.setxattr(p("etc/hostname"), "user.kiln.note", b"hello\x00world")
os.setxattr(p("srv"), "user.dir", b"on a directory")
os.setxattr(p("etc/absolute"), "trusted.on-symlink", b"1")
def acl(entries):
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", t, m, i) for t, m, i in entries)
U = 0xFFFFFFFF
os.setxattr(p("srv/big-ids"), "system.posix_acl_access",
            acl([(1, 6, U), (2, 4, 1234), (4, 4, U), (8, 6, 5678), (16, 6, U), (32, 4, U)]))
os.setxattr(p("srv"), "system.posix_acl_default", acl([(1, 7, U), (2, 5, 1234), (4, 5, U), (16, 5, U), (32, 0, U)]))
with open(p("var/big/sparse-middle"), "wb") as f:
    f.write(b"head" * 1024); f.seek(48 << 20); f.write(b"middle" * 2000); f.truncate(96 << 20)
with open(p("var/big/sparse-end"), "wb") as f:
    f.write(b"start"); f.truncate(40 << 20)
for i in range(0, filler, 1 << 20):
    n = min(1 << 20, filler - i)
    half = rnd.randbytes(n // 2)
    write(f"var/big/filler-{i >> 20:05d}", half + half[: n - len(half)])
for i, rel in enumerate(sorted(os.path.relpath(os.path.join(d, n), root)
                               for d, ds, fs in os.walk(root) for n in ds + fs) + ["."]):
    os.utime(p(rel), ns=(1_600_000_000_123_456_789, 1_700_000_000_000_000_001 + i * 1_000_003), follow_symlinks=False)
"""#

    private static let walk = #"""
import hashlib, os, stat, sys
root = sys.argv[1]
groups, lines = {}, []
entries = ["."] + sorted(os.path.relpath(os.path.join(d, n), root) for d, ds, fs in os.walk(root) for n in ds + fs)
for rel in entries:
    path = os.path.join(root, rel)
    st = os.lstat(path)
    kind = stat.S_IFMT(st.st_mode)
    f = [repr(rel), oct(stat.S_IMODE(st.st_mode)), f"{st.st_uid}:{st.st_gid}", f"mtime={st.st_mtime_ns}"]
    if stat.S_ISREG(kind):
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""): h.update(block)
        f += ["file", f"size={st.st_size}", h.hexdigest()[:16], f"links={st.st_nlink}"]
        f.append("group=" + groups.setdefault((st.st_dev, st.st_ino), rel))
        if st.st_size >= 8 << 20: f.append("holes" if st.st_blocks * 512 < st.st_size // 2 else "dense")
    elif stat.S_ISDIR(kind): f.append("dir")
    elif stat.S_ISLNK(kind): f += ["symlink", repr(os.readlink(path))]
    elif stat.S_ISCHR(kind) or stat.S_ISBLK(kind):
        f += ["chr" if stat.S_ISCHR(kind) else "blk", f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"]
    elif stat.S_ISFIFO(kind): f.append("fifo")
    else: f.append(f"other:{kind}")
    for name in sorted(os.listxattr(path, follow_symlinks=False)):
        f.append(f"xattr:{name}={os.getxattr(path, name, follow_symlinks=False).hex()}")
    lines.append(" ".join(f))
print("\n".join(lines))
"""#
}
