import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A file that holds a tree stream at its offsets: the agent's copy until
/// `Ack`, the scheduler's copy while it verifies and extracts. Positional
/// reads and writes only, so a writer, a sender and a reader can share it.
package final class SpoolFile: Sendable {
    package let path: String
    private let fd: Int32

    /// Opens `path` for reading, or creates (truncates) it for reading and writing.
    package init(path: String, create: Bool) throws(StreamError) {
        self.path = path
        let flags = create ? O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC : O_RDONLY | O_CLOEXEC
        fd = open(path, flags, 0o600)
        guard fd >= 0 else { throw StreamError.spool(path: path, operation: create ? "create" : "open", reason: Self.lastError) }
    }

    deinit { close(fd) }

    /// Writes all of `bytes` at `offset`.
    package func write(_ bytes: UnsafeRawBufferPointer, at offset: UInt64) throws(StreamError) {
        var done = 0
        while done < bytes.count {
            let n = pwrite(fd, bytes.baseAddress! + done, bytes.count - done, off_t(offset) + off_t(done))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw .spool(path: path, operation: "write at \(offset)", reason: Self.lastError) }
            done += n
        }
    }

    /// Fills `buffer` from `offset`; fewer bytes only at the end of the file.
    package func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws(StreamError) -> Int {
        var done = 0
        while done < buffer.count {
            let n = pread(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset) + off_t(done))
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw .spool(path: path, operation: "read at \(offset)", reason: Self.lastError) }
            if n == 0 { break }
            done += n
        }
        return done
    }

    /// `count` bytes from `offset`; throws if the file is shorter.
    package func read(_ count: Int, at offset: UInt64) throws(StreamError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        let got = try bytes.withUnsafeMutableBytes { buffer in
            Result { () throws(StreamError) in try read(into: buffer, at: offset) }
        }.get()
        guard got == count else {
            throw .spool(path: path, operation: "read \(count) bytes at \(offset)", reason: "the file ends after \(got)")
        }
        return bytes
    }

    /// Writes all of `bytes` at `offset`.
    package func write(_ bytes: [UInt8], at offset: UInt64) throws(StreamError) {
        try bytes.withUnsafeBytes { buffer in
            Result { () throws(StreamError) in try write(buffer, at: offset) }
        }.get()
    }

    /// Removes the file (the open descriptor stays valid until deinit).
    package func remove() {
        unlink(path)
    }

    private static var lastError: String { String(cString: strerror(errno)) }
}
