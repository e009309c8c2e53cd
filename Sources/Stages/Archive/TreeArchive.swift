import CArchive
import Foundation
import Threads

/// A directory tree as a stream of bytes: a pax tar (numeric owners, modes,
/// nanosecond mtimes, hard links, symlinks, device nodes, fifos, xattrs,
/// ACLs, sparse files) compressed with zstd, entries in byte order of their
/// names. Both directions run libarchive on a thread of their own and move
/// bytes through caller-supplied functions, so a tree can be sent while it
/// is still being archived and extracted while it is still arriving.
package enum TreeArchive {
    /// zstd settings. The default, level 1 with one worker thread, costs the
    /// least CPU end to end on a two-core machine that also runs the
    /// receiver (docs/benchmarks.md, "Tree streaming"): level 1 needs about a
    /// third less compression time than level 3 for a stream only ≈11 %
    /// larger (249 against 224 MB for a 714 MB Debian tree), and the worker
    /// compresses while the archiving thread reads files.
    package struct Compression: Sendable, Equatable {
        /// zstd level, 1 (fastest) … 19.
        package var level: Int
        /// zstd worker threads; 0 compresses on the archiving thread itself.
        package var threads: Int

        package init(level: Int = 1, threads: Int = 1) {
            self.level = level
            self.threads = threads
        }

        package static let `default` = Compression()
    }

    package struct WriteStats: Sendable, Equatable {
        /// Entries written (directories, files, links, special files).
        package var entries = 0
        /// Bytes of file contents in the tree (sparse files at their full size).
        package var treeBytes: UInt64 = 0
        /// Bytes of the compressed archive handed to the sink.
        package var archiveBytes: UInt64 = 0
        /// Sockets, which tar cannot hold, left out.
        package var skippedSockets = 0
    }

    /// What one extraction may cost at most: a stream from a peer chooses
    /// none of it. Past a limit the extraction fails with
    /// `TreeArchiveError.overLimit`, naming the limit, before the entry that
    /// would pass it is written.
    package struct Limits: Sendable, Equatable {
        /// Bytes of file contents, sparse files at their full (declared) size.
        package var maxExtractedBytes: UInt64
        /// Entries of any kind.
        package var maxEntries: Int
        /// `ZSTD_d_windowLogMax`: a frame that needs a larger window (memory
        /// for the decoder) is refused.
        package var windowLogMax: Int32

        package init(maxExtractedBytes: UInt64 = 16 << 30, maxEntries: Int = 2_000_000, windowLogMax: Int32 = 27) {
            self.maxExtractedBytes = maxExtractedBytes
            self.maxEntries = maxEntries
            self.windowLogMax = windowLogMax
        }

        package static let `default` = Limits()
    }

    package struct ExtractStats: Sendable, Equatable {
        package var entries = 0
        /// Bytes of file contents written (sparse files at their full size).
        package var treeBytes: UInt64 = 0
    }

    /// Archives `tree` (read only), handing the compressed bytes to `sink` as
    /// they are produced, in order. A throwing sink stops the archive
    /// (`TreeArchiveError.output`). Runs on a thread of its own.
    package static func write(
        tree: String, compression: Compression = .default,
        sink: @escaping @Sendable (UnsafeRawBufferPointer) throws -> Void
    ) async throws -> WriteStats {
        try await DedicatedThread.run(name: "kiln-archive-write") {
            try TreeArchiveWriter.write(tree: tree, compression: compression, sink: sink)
        }
    }

    /// Extracts a tar+zstd stream into the directory `target` (which exists,
    /// or with `creating` is made first, on the extraction thread),
    /// pulling bytes through `read` (called on the extraction thread; it may
    /// block, returns how many bytes it put into the buffer, 0 at the end, or
    /// throws). Owners, modes, times, xattrs, ACLs and holes are restored; an
    /// entry that would land outside `target` fails the extraction
    /// (`TreeArchiveError.escapes`) before anything is written for it.
    package static func extract(
        into target: String, creating: Bool = false, limits: Limits = .default,
        read: @escaping @Sendable (UnsafeMutableRawBufferPointer) throws -> Int
    ) async throws -> ExtractStats {
        try await DedicatedThread.run(name: "kiln-archive-extract") {
            try extractOnThisThread(into: target, creating: creating, limits: limits, read: read)
        }
    }

    /// `extract` on the calling thread, for threads the caller made for such
    /// work (the scheduler's download lanes): the thread gets a working
    /// directory of its own, unshared from the process (extraction paths are
    /// relative to it), and is left in `/`. Blocks while `read` does.
    package static func extractOnThisThread(
        into target: String, creating: Bool, limits: Limits = .default,
        read: @escaping (UnsafeMutableRawBufferPointer) throws -> Int
    ) throws -> ExtractStats {
        if creating, mkdir(target, 0o755) != 0 {
            throw TreeArchiveError.badTarget(path: target, reason: String(cString: strerror(errno)))
        }
        return try TreeArchiveExtractor.extract(into: target, limits: limits, read: read)
    }

    /// libarchive's message for the last failure on `archive`.
    static func message(_ archive: OpaquePointer?) -> String {
        guard let archive, let text = archive_error_string(archive) else { return "unknown libarchive error" }
        return String(cString: text)
    }
}
