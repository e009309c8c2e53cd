import CArchive
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Reads a tar+zstd stream from a pull function and recreates its entries
/// under a target directory with libarchive's disk writer. Blocking, and it
/// changes the calling thread's working directory: only ever called on a
/// thread made for it (`TreeArchive.extract`'s, or a scheduler download lane).
enum TreeArchiveExtractor {
    /// Where libarchive's input comes from; the C read callback reaches it
    /// through the client-data pointer.
    private final class Input {
        let read: (UnsafeMutableRawBufferPointer) throws -> Int
        /// The stream is zstd; libarchive gets plain tar (`ZstdDecoder` says why).
        let decoder: ZstdDecoder
        var failure: (any Error)?
        init(read: @escaping (UnsafeMutableRawBufferPointer) throws -> Int, decoder: ZstdDecoder) {
            self.read = read
            self.decoder = decoder
        }
    }

    /// Owners, modes, times, xattrs and ACLs come back; nothing may be
    /// written outside the target: no `..`, no absolute paths, no path through
    /// a symlink (also for hard-link targets).
    ///
    /// Holes come back from the entries' pax sparse maps: libarchive hands
    /// out data blocks at their offsets and the disk writer seeks over the
    /// gaps. `ARCHIVE_EXTRACT_SPARSE` is deliberately not set: it would also
    /// scan every file for runs of zeros and write in 4 KiB pieces (172,000
    /// `write` calls and ≈40 % more system time for a 705 MB Debian tree,
    /// docs/benchmarks.md), turning zero-filled blocks the source had
    /// allocated into holes it did not have.
    static let flags: Int32 = ARCHIVE_EXTRACT_OWNER | ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_TIME
        | ARCHIVE_EXTRACT_XATTR | ARCHIVE_EXTRACT_ACL
        | ARCHIVE_EXTRACT_SECURE_NODOTDOT | ARCHIVE_EXTRACT_SECURE_SYMLINKS | ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS

    static func extract(
        into target: String, limits: TreeArchive.Limits = .default,
        read: @escaping (UnsafeMutableRawBufferPointer) throws -> Int
    ) throws(TreeArchiveError) -> TreeArchive.ExtractStats {
        // libarchive resolves entry paths against the working directory: give
        // this thread a directory of its own and enter the target. Relative
        // targets would resolve against where the thread's last extraction left it.
        guard target.hasPrefix("/") else { throw .badTarget(path: target, reason: "not an absolute path") }
        guard kiln_unshare_fs() == 0 else {
            throw .badTarget(path: target, reason: "unshare(CLONE_FS): \(String(cString: strerror(errno)))")
        }
        guard chdir(target) == 0 else {
            throw .badTarget(path: target, reason: String(cString: strerror(errno)))
        }
        defer { _ = chdir("/") }  // the thread may serve again: hold no tree open
        // Taken before the reader is made, so it goes back after the reader is freed.
        guard let decoder = ZstdDecoder.take(windowLogMax: limits.windowLogMax) else { throw .malformed(reason: "zstd: out of memory") }
        defer { ZstdDecoder.give(back: decoder) }
        guard let reader = archive_read_new() else { throw .malformed(reason: "archive_read_new: out of memory") }
        defer { archive_read_free(reader) }
        guard let disk = archive_write_disk_new() else { throw .badTarget(path: target, reason: "archive_write_disk_new: out of memory") }
        defer { archive_write_free(disk) }
        archive_read_support_format_tar(reader)
        archive_write_disk_set_options(disk, flags)  // no name lookups: numeric owners

        let input = Input(read: read, decoder: decoder)
        func inputFailure(_ fallback: @autoclosure () -> TreeArchiveError) -> TreeArchiveError {
            guard let failure = input.failure else { return fallback() }
            return failure as? TreeArchiveError ?? .input(reason: "\(failure)")
        }
        let opened = archive_read_open(reader, Unmanaged.passUnretained(input).toOpaque(), nil, { _, client, out in
            let input = Unmanaged<Input>.fromOpaque(client!).takeUnretainedValue()
            do {
                let count = try input.decoder.read(from: input.read)
                out?.pointee = UnsafeRawPointer(input.decoder.output.baseAddress)
                return count
            } catch {
                input.failure = error
                return -1
            }
        }, nil)
        guard opened == ARCHIVE_OK else { throw inputFailure(.malformed(reason: TreeArchive.message(reader))) }

        var stats = TreeArchive.ExtractStats()
        var rootTime: timespec?
        while true {
            var entry: OpaquePointer?
            let rc = archive_read_next_header(reader, &entry)
            if rc == ARCHIVE_EOF { break }
            guard rc >= ARCHIVE_WARN, let entry else { throw inputFailure(.malformed(reason: TreeArchive.message(reader))) }
            let name = archive_entry_pathname(entry).map { String(cString: $0) } ?? ""
            try refuseEscape(name, entry: name)
            // Limits are checked on what the header declares, before anything is written for the entry.
            guard stats.entries < limits.maxEntries else {
                throw .overLimit(limit: "entries (stream-max-entries, \(limits.maxEntries))",
                                 detail: "entry \(stats.entries + 1) \"\(name)\" is one too many")
            }
            let declared = archive_entry_size_is_set(entry) != 0 ? max(0, archive_entry_size(entry)) : 0
            let isFile = archive_entry_filetype(entry) == KILN_AE_IFREG
            if isFile, UInt64(declared) > limits.maxExtractedBytes - min(stats.treeBytes, limits.maxExtractedBytes) {
                throw .overLimit(limit: "extracted bytes (stream-max-extracted-gib, \(limits.maxExtractedBytes) bytes)",
                                 detail: "\"\(name)\" of \(declared) bytes would bring the tree to \(stats.treeBytes + UInt64(declared)) bytes")
            }
            if isRoot(name) && archive_entry_mtime_is_set(entry) != 0 {
                rootTime = timespec(tv_sec: archive_entry_mtime(entry), tv_nsec: archive_entry_mtime_nsec(entry))
            }
            if let link = archive_entry_hardlink(entry) { try refuseEscape(String(cString: link), entry: name) }
            guard archive_write_header(disk, entry) == ARCHIVE_OK else {
                let reason = TreeArchive.message(disk)
                throw reason.localizedCaseInsensitiveContains("symlink") || reason.contains("'..'")
                    || reason.localizedCaseInsensitiveContains("absolute")
                    ? .escapes(entry: name, reason: reason) : .extractFailed(entry: name, reason: reason)
            }
            stats.entries += 1
            if archive_entry_size_is_set(entry) != 0 && archive_entry_size(entry) > 0 {
                while true {
                    var block: UnsafeRawPointer?
                    var size = 0
                    var offset: Int64 = 0
                    let r = archive_read_data_block(reader, &block, &size, &offset)
                    if r == ARCHIVE_EOF { break }
                    guard r >= ARCHIVE_WARN else { throw inputFailure(.malformed(reason: TreeArchive.message(reader))) }
                    // Data stays inside the size the header declared (and was counted against the limit).
                    guard offset >= 0, size <= Int(declared), offset <= declared - Int64(size) else {
                        throw .malformed(reason: "\"\(name)\": \(size) bytes at \(offset) lie outside its declared size \(declared)")
                    }
                    guard archive_write_data_block(disk, block, size, offset) >= ARCHIVE_OK else {
                        throw .extractFailed(entry: name, reason: TreeArchive.message(disk))
                    }
                }
                if isFile { stats.treeBytes += UInt64(declared) }
            }
            guard archive_write_finish_entry(disk) == ARCHIVE_OK else {
                throw .extractFailed(entry: name, reason: TreeArchive.message(disk))
            }
        }
        // Directory modes and times are set last, when nothing more goes into them.
        guard archive_write_close(disk) == ARCHIVE_OK else {
            throw .extractFailed(entry: "(directory attributes)", reason: TreeArchive.message(disk))
        }
        // libarchive restores the target's own mode and owner from the "."
        // entry but leaves its mtime to the writes that went into it.
        if let mtime = rootTime {
            let times = [mtime, mtime]
            guard utimensat(AT_FDCWD, ".", times, 0) == 0 else {
                throw .extractFailed(entry: ".", reason: "utimensat: \(String(cString: strerror(errno)))")
            }
        }
        return stats
    }

    /// Whether an entry names the target itself (".", "./", ".//.").
    private static func isRoot(_ path: String) -> Bool {
        path.split(separator: "/").allSatisfy { $0 == "." }
    }

    /// Absolute paths and `..` components are refused before libarchive sees
    /// them (libarchive refuses them too; this names the cause plainly).
    private static func refuseEscape(_ path: String, entry: String) throws(TreeArchiveError) {
        if path.hasPrefix("/") {
            throw .escapes(entry: entry, reason: "\"\(path)\" is an absolute path")
        }
        if path.split(separator: "/", omittingEmptySubsequences: true).contains("..") {
            throw .escapes(entry: entry, reason: "\"\(path)\" contains a \"..\" component")
        }
    }
}
