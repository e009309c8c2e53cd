import CArchive
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Walks a tree in byte order of names and writes each entry through
/// libarchive's pax writer and zstd filter. Blocking: runs on the thread
/// `TreeArchive.write` starts.
final class TreeArchiveWriter {
    /// Where libarchive's output goes; the C write callback reaches it
    /// through the client-data pointer.
    private final class Output {
        let sink: (UnsafeRawBufferPointer) throws -> Void
        var bytes: UInt64 = 0
        var failure: (any Error)?
        init(sink: @escaping (UnsafeRawBufferPointer) throws -> Void) { self.sink = sink }
    }

    private struct FileID: Hashable {
        let device: UInt64
        let inode: UInt64
    }

    private static let blockSize = 1 << 20

    private let root: [UInt8]
    private let archive: OpaquePointer
    private let disk: OpaquePointer
    private let entry: OpaquePointer
    private let output: Output
    private let buffer: UnsafeMutableRawBufferPointer
    private var zeros: UnsafeMutableRawBufferPointer?
    /// The first archive path of each inode with several links.
    private var links: [FileID: [UInt8]] = [:]
    private var stats = TreeArchive.WriteStats()

    static func write(
        tree: String, compression: TreeArchive.Compression,
        sink: @escaping (UnsafeRawBufferPointer) throws -> Void
    ) throws(TreeArchiveError) -> TreeArchive.WriteStats {
        let writer = try TreeArchiveWriter(tree: tree, compression: compression, sink: sink)
        defer { writer.release() }
        return try writer.run()
    }

    private init(
        tree: String, compression: TreeArchive.Compression, sink: @escaping (UnsafeRawBufferPointer) throws -> Void
    ) throws(TreeArchiveError) {
        var rootPath = Array(tree.utf8)
        while rootPath.count > 1 && rootPath.last == UInt8(ascii: "/") { rootPath.removeLast() }
        root = rootPath
        output = Output(sink: sink)
        guard let archive = archive_write_new() else { throw .writeFailed(operation: "archive_write_new", reason: "out of memory") }
        guard let disk = archive_read_disk_new() else {
            archive_write_free(archive)
            throw .writeFailed(operation: "archive_read_disk_new", reason: "out of memory")
        }
        guard let entry = archive_entry_new() else {
            archive_write_free(archive)
            archive_read_free(disk)
            throw .writeFailed(operation: "archive_entry_new", reason: "out of memory")
        }
        self.archive = archive
        self.disk = disk
        self.entry = entry
        buffer = .allocate(byteCount: Self.blockSize, alignment: 4096)
        do {
            try configure(compression)
        } catch {
            release()
            throw error
        }
    }

    private func release() {
        archive_write_free(archive)
        archive_read_free(disk)
        archive_entry_free(entry)
        buffer.deallocate()
        zeros?.deallocate()
    }

    private func check(_ rc: Int32, _ operation: String) throws(TreeArchiveError) {
        if rc != ARCHIVE_OK { throw outputFailure() ?? .writeFailed(operation: operation, reason: TreeArchive.message(archive)) }
    }

    private func outputFailure() -> TreeArchiveError? {
        guard let failure = output.failure else { return nil }
        return failure as? TreeArchiveError ?? .output(reason: "\(failure)")
    }

    private func configure(_ compression: TreeArchive.Compression) throws(TreeArchiveError) {
        // pax: an extended header for every entry, which holds what ustar
        // cannot (nanosecond mtimes, long names, big ids, xattrs, ACLs, sparse
        // maps). "Restricted" pax would drop sub-second mtimes of entries that
        // need nothing else; the extra headers compress to almost nothing.
        try check(archive_write_set_format_pax(archive), "archive_write_set_format_pax")
        // Names are bytes: stored as they are, whatever the process locale
        // (pax `hdrcharset=BINARY`; libarchive would otherwise convert them
        // from the C locale and refuse anything outside ASCII).
        try check(archive_write_set_format_option(archive, "pax", "hdrcharset", "BINARY"), "pax hdrcharset=BINARY")
        try check(archive_write_add_filter_zstd(archive), "archive_write_add_filter_zstd")
        try check(archive_write_set_filter_option(archive, "zstd", "compression-level", "\(compression.level)"),
                  "zstd compression-level \(compression.level)")
        if compression.threads > 0 {
            try check(archive_write_set_filter_option(archive, "zstd", "threads", "\(compression.threads)"),
                      "zstd threads \(compression.threads)")
        }
        // The compressed stream ends where the data ends (no block padding).
        try check(archive_write_set_bytes_in_last_block(archive, 1), "archive_write_set_bytes_in_last_block")
        // Numeric owners only (no user/group name lookups); no chattr flags,
        // which the store could not remove again.
        try check(archive_read_disk_set_behavior(disk, ARCHIVE_READDISK_NO_FFLAGS), "archive_read_disk_set_behavior")
        try check(archive_read_disk_set_symlink_physical(disk), "archive_read_disk_set_symlink_physical")
        let client = Unmanaged.passUnretained(output).toOpaque()
        let rc = archive_write_open2(archive, client, nil, { _, client, bytes, count in
            let output = Unmanaged<TreeArchiveWriter.Output>.fromOpaque(client!).takeUnretainedValue()
            do {
                try output.sink(UnsafeRawBufferPointer(start: bytes, count: count))
                output.bytes += UInt64(count)
                return count
            } catch {
                output.failure = error
                return -1
            }
        }, nil, nil)
        try check(rc, "archive_write_open2")
    }

    private func run() throws(TreeArchiveError) -> TreeArchive.WriteStats {
        try add(path: root, name: Array(".".utf8), isRoot: true)
        try check(archive_write_close(archive), "archive_write_close")
        stats.archiveBytes = output.bytes
        return stats
    }

    /// Writes the entry at `path` (archive name `name`) and, for a directory,
    /// everything below it.
    private func add(path: [UInt8], name: [UInt8], isRoot: Bool = false) throws(TreeArchiveError) {
        var st = stat()
        guard withCString(path, { lstat($0, &st) }) == 0 else {
            throw .unreadable(path: Self.text(path), reason: String(cString: strerror(errno)))
        }
        let kind = st.st_mode & S_IFMT
        if kind == S_IFSOCK {
            stats.skippedSockets += 1
            return
        }
        try writeEntry(path: path, name: name, status: &st)
        guard kind == S_IFDIR else { return }
        for child in try Self.names(in: path) {
            try add(path: path + [UInt8(ascii: "/")] + child, name: name + [UInt8(ascii: "/")] + child)
        }
    }

    private func writeEntry(path: [UInt8], name: [UInt8], status st: inout stat) throws(TreeArchiveError) {
        let kind = st.st_mode & S_IFMT
        var fd: Int32 = -1
        if kind == S_IFREG || kind == S_IFDIR {
            // Opened without following a symlink swapped in since lstat.
            let flags = O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | (kind == S_IFDIR ? O_DIRECTORY : 0)
            fd = withCString(path) { open($0, flags) }
            guard fd >= 0 else { throw .unreadable(path: Self.text(path), reason: String(cString: strerror(errno))) }
        }
        defer { if fd >= 0 { close(fd) } }
        archive_entry_clear(entry)
        withCString(name) { archive_entry_copy_pathname(entry, $0) }
        withCString(path) { archive_entry_copy_sourcepath(entry, $0) }
        // Owners, mode, times, symlink target, device numbers, xattrs, ACLs, holes.
        let rc = archive_read_disk_entry_from_file(disk, entry, fd, &st)
        guard rc == ARCHIVE_OK else {
            throw .unreadable(path: Self.text(path), reason: TreeArchive.message(disk))
        }
        // Access and change times differ on every read; they are not part of the tree.
        archive_entry_unset_atime(entry)
        archive_entry_unset_ctime(entry)
        archive_entry_unset_birthtime(entry)
        var isLink = false
        if kind != S_IFDIR && st.st_nlink > 1 {
            let id = FileID(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
            if let first = links[id] {
                withCString(first) { archive_entry_copy_hardlink(entry, $0) }
                archive_entry_set_size(entry, 0)
                archive_entry_sparse_clear(entry)
                isLink = true
            } else {
                links[id] = name
            }
        }
        try check(archive_write_header(archive, entry), "archive_write_header(\(Self.text(name)))")
        stats.entries += 1
        if kind == S_IFREG && !isLink && st.st_size > 0 {
            try copyContents(fd: fd, size: UInt64(st.st_size), path: path)
        }
        try check(archive_write_finish_entry(archive), "archive_write_finish_entry(\(Self.text(name)))")
    }

    /// Feeds the file's logical contents; holes go in as zeros, which the pax
    /// writer skips because the entry's sparse map marks them.
    private func copyContents(fd: Int32, size: UInt64, path: [UInt8]) throws(TreeArchiveError) {
        var regions: [(offset: UInt64, length: UInt64)] = []
        if archive_entry_sparse_reset(entry) > 0 {
            var offset: Int64 = 0, length: Int64 = 0
            while archive_entry_sparse_next(entry, &offset, &length) == ARCHIVE_OK {
                regions.append((UInt64(offset), UInt64(length)))
            }
        }
        if regions.isEmpty { regions = [(0, size)] }
        var position: UInt64 = 0
        for region in regions {
            let start = min(region.offset, size), end = min(region.offset + region.length, size)
            try feedZeros(start - min(position, start))
            position = max(position, start)
            while position < end {
                let want = Int(min(UInt64(Self.blockSize), end - position))
                let got = pread(fd, buffer.baseAddress, want, off_t(position))
                if got < 0 {
                    if errno == EINTR { continue }
                    throw .unreadable(path: Self.text(path), reason: String(cString: strerror(errno)))
                }
                if got == 0 { break }  // the file shrank; libarchive pads the entry
                try feed(UnsafeRawBufferPointer(start: buffer.baseAddress, count: got))
                position += UInt64(got)
            }
        }
        if position < size { try feedZeros(size - position) }
        stats.treeBytes += size
    }

    private func feedZeros(_ count: UInt64) throws(TreeArchiveError) {
        guard count > 0 else { return }
        let zeros = self.zeros ?? {
            let z = UnsafeMutableRawBufferPointer.allocate(byteCount: Self.blockSize, alignment: 4096)
            z.initializeMemory(as: UInt8.self, repeating: 0)
            return z
        }()
        self.zeros = zeros
        var left = count
        while left > 0 {
            let n = Int(min(UInt64(Self.blockSize), left))
            if !(try feed(UnsafeRawBufferPointer(start: zeros.baseAddress, count: n))) { return }
            left -= UInt64(n)
        }
    }

    /// Hands bytes of the current entry to libarchive; false once the entry
    /// takes no more (it grew after it was stat'ed).
    @discardableResult
    private func feed(_ bytes: UnsafeRawBufferPointer) throws(TreeArchiveError) -> Bool {
        var done = 0
        while done < bytes.count {
            let n = archive_write_data(archive, bytes.baseAddress! + done, bytes.count - done)
            if n < 0 { throw outputFailure() ?? .writeFailed(operation: "archive_write_data", reason: TreeArchive.message(archive)) }
            if n == 0 { return false }
            done += n
        }
        return true
    }

    /// The names in a directory (not `.` and `..`), sorted by their bytes.
    private static func names(in path: [UInt8]) throws(TreeArchiveError) -> [[UInt8]] {
        guard let dir = withCString(path, { opendir($0) }) else {
            throw .unreadable(path: text(path), reason: String(cString: strerror(errno)))
        }
        defer { closedir(dir) }
        var names: [[UInt8]] = []
        while true {
            errno = 0
            guard let item = readdir(dir) else {
                if errno != 0 { throw .unreadable(path: text(path), reason: String(cString: strerror(errno))) }
                break
            }
            let name = withUnsafePointer(to: &item.pointee.d_name) { tuple in
                tuple.withMemoryRebound(to: UInt8.self, capacity: MemoryLayout.size(ofValue: tuple.pointee)) {
                    Array(UnsafeBufferPointer(start: $0, count: strlen(UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self))))
                }
            }
            if name == [0x2E] || name == [0x2E, 0x2E] { continue }
            names.append(name)
        }
        return names.sorted { $0.lexicographicallyPrecedes($1) }
    }

    static func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }
}

/// Calls `body` with `bytes` as a NUL-terminated C string.
func withCString<R>(_ bytes: [UInt8], _ body: (UnsafePointer<CChar>) throws -> R) rethrows -> R {
    try (bytes + [0]).withUnsafeBufferPointer { buffer in
        try buffer.withMemoryRebound(to: CChar.self) { try body($0.baseAddress!) }
    }
}
