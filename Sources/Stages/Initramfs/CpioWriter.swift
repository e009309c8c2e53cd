import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Writes a directory as a `newc` cpio archive the way `find . | LC_ALL=C sort
/// | cpio -o -H newc -R 0:0 --reproducible` does: entries sorted by path, owned
/// by root, inodes renumbered, one fixed mtime, hard links sharing their data.
package enum CpioWriter {
    package static func write(directory: String, to output: String, mtime: UInt32) throws {
        let paths = try relativePaths(directory)
        guard FileManager.default.createFile(atPath: output, contents: nil), let out = FileHandle(forWritingAtPath: output) else {
            throw InitramfsError.stagingFailed(path: output, reason: "cannot create the archive")
        }
        defer { try? out.close() }
        var buffer = Data(), written = 0
        func emit(_ d: Data) throws {
            buffer.append(d)
            written += d.count
            if buffer.count >= 1 << 20 { try out.write(contentsOf: buffer); buffer.removeAll(keepingCapacity: true) }
        }
        func pad(_ n: Int) -> Data { Data(count: (4 - n % 4) % 4) }

        // Hard links: the data goes with the last name, as GNU cpio and the kernel's unpacker expect.
        var stats: [String: stat] = [:]
        var groups: [String: [String]] = [:]
        for p in paths {
            var st = stat()
            guard lstat(directory + "/" + p, &st) == 0 else { throw InitramfsError.stagingFailed(path: p, reason: "vanished") }
            stats[p] = st
            if st.st_mode & S_IFMT == S_IFREG && st.st_nlink > 1 { groups["\(st.st_dev):\(st.st_ino)", default: []].append(p) }
        }
        var inodes: [String: UInt32] = [:]
        var nextInode: UInt32 = 1
        for p in paths {
            let st = stats[p]!
            let key = "\(st.st_dev):\(st.st_ino)"
            let ino: UInt32
            if let known = inodes[key] { ino = known } else { ino = nextInode; nextInode += 1; inodes[key] = ino }
            let type = st.st_mode & S_IFMT
            var body = Data()
            var nlink = UInt32(st.st_nlink)
            if type == S_IFREG {
                if let group = groups[key] {
                    nlink = UInt32(group.count)
                    if group.last == p { body = try contents(directory + "/" + p) }
                } else {
                    nlink = 1
                    body = try contents(directory + "/" + p)
                }
            } else if type == S_IFLNK {
                var buf = [CChar](repeating: 0, count: 4097)
                let n = readlink(directory + "/" + p, &buf, 4096)
                body = Data(buf[0..<max(n, 0)].map { UInt8(bitPattern: $0) })
                nlink = 1
            }
            let rdev = UInt32(truncatingIfNeeded: st.st_rdev)
            try emit(header(ino: ino, mode: UInt32(st.st_mode), nlink: nlink, mtime: mtime, size: UInt32(body.count),
                            rdevMajor: type == S_IFCHR || type == S_IFBLK ? (rdev >> 8) & 0xFFF : 0,
                            rdevMinor: type == S_IFCHR || type == S_IFBLK ? rdev & 0xFF : 0, name: p))
            try emit(body)
            try emit(pad(body.count))
        }
        try emit(header(ino: 0, mode: 0, nlink: 1, mtime: 0, size: 0, rdevMajor: 0, rdevMinor: 0, name: "TRAILER!!!"))
        try emit(Data(count: (512 - written % 512) % 512))
        try out.write(contentsOf: buffer)
    }

    private static func contents(_ path: String) throws -> Data {
        guard let d = FileManager.default.contents(atPath: path) else { throw InitramfsError.stagingFailed(path: path, reason: "cannot read") }
        return d
    }

    private static func header(ino: UInt32, mode: UInt32, nlink: UInt32, mtime: UInt32, size: UInt32,
                               rdevMajor: UInt32, rdevMinor: UInt32, name: String) -> Data {
        let nameBytes = Array(name.utf8) + [0]
        let fields: [UInt32] = [ino, mode, 0, 0, nlink, mtime, size, 0, 0, rdevMajor, rdevMinor, UInt32(nameBytes.count), 0]
        var s = "070701"
        for f in fields {
            let h = String(f, radix: 16, uppercase: true)
            s += String(repeating: "0", count: 8 - h.count) + h
        }
        var d = Data(s.utf8)
        d.append(contentsOf: nameBytes)
        d.append(Data(count: (4 - (110 + nameBytes.count) % 4) % 4))
        return d
    }

    /// `.` and every path below `directory`, relative, sorted by bytes (`LC_ALL=C sort` of `find .` with `./` stripped).
    static func relativePaths(_ directory: String) throws -> [String] {
        var out: [String] = []
        func walk(_ rel: String) throws {
            let full = rel.isEmpty ? directory : directory + "/" + rel
            for name in try FileManager.default.contentsOfDirectory(atPath: full) {
                let child = rel.isEmpty ? name : rel + "/" + name
                out.append(child)
                var st = stat()
                if lstat(directory + "/" + child, &st) == 0, st.st_mode & S_IFMT == S_IFDIR { try walk(child) }
            }
        }
        try walk("")
        // Sort as `find . | sort` sees them: "./a/b" compared bytewise.
        return ["."] + out.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
    }
}
