import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A file that holds a tree stream at its offsets: the agent's copy until
/// `Ack`, the scheduler's copy while it verifies and extracts. Positional
/// reads and writes only, so a writer, a sender and a reader can share it.
///
/// With a `memoryLimit`, a stream that stays within it never touches the
/// disk: the bytes live in memory and the file is created only when a write
/// goes past the limit. Small trees (a scheduler receiving thousands of them)
/// then cost no file creation and deletion, which on ext4 dominated the
/// scheduler's CPU profile (inode allocation skipping recently deleted inodes).
package final class SpoolFile: Sendable {
    package let path: String
    private let memoryLimit: Int
    private let state: Mutex<(fd: Int32, memory: [UInt8], created: Bool)>

    /// Opens `path` for reading, or creates (truncates) it for reading and writing.
    package init(path: String, create: Bool, memoryLimit: Int = 0) throws(StreamError) {
        self.path = path
        self.memoryLimit = create ? memoryLimit : 0
        if create && memoryLimit > 0 {
            state = Mutex((-1, [], false))
            return
        }
        let flags = create ? O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC : O_RDONLY | O_CLOEXEC
        let fd = open(path, flags, 0o600)
        guard fd >= 0 else { throw StreamError.spool(path: path, operation: create ? "create" : "open", reason: Self.lastError) }
        state = Mutex((fd, [], create))
    }

    deinit {
        let fd = state.withLock { $0.fd }
        if fd >= 0 { close(fd) }
    }

    /// The descriptor, creating the file (with what memory holds) once a
    /// write no longer fits in memory; -1 while the stream is in memory.
    private func descriptor(forWriteEndingAt end: UInt64) throws(StreamError) -> Int32 {
        try state.withLock { (s: inout (fd: Int32, memory: [UInt8], created: Bool)) throws(StreamError) -> Int32 in
            if s.fd >= 0 || end <= UInt64(memoryLimit) { return s.fd }
            let fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw StreamError.spool(path: path, operation: "create", reason: Self.lastError) }
            let held = s.memory
            s.memory = []
            s.fd = fd
            s.created = true
            try held.withUnsafeBytes { b in
                Result { () throws(StreamError) in try Self.pwriteAll(fd, b, at: 0, path: path) }
            }.get()
            return fd
        }
    }

    /// Writes all of `bytes` at `offset`.
    package func write(_ bytes: UnsafeRawBufferPointer, at offset: UInt64) throws(StreamError) {
        let fd = try descriptor(forWriteEndingAt: offset + UInt64(bytes.count))
        if fd < 0 {
            state.withLock { s in
                let end = Int(offset) + bytes.count
                if s.memory.count < end { s.memory.append(contentsOf: repeatElement(0, count: end - s.memory.count)) }
                s.memory.withUnsafeMutableBytes { m in
                    m.baseAddress!.advanced(by: Int(offset)).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
                }
            }
            return
        }
        try Self.pwriteAll(fd, bytes, at: offset, path: path)
    }

    private static func pwriteAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, at offset: UInt64, path: String) throws(StreamError) {
        guard bytes.count > 0 else { return }
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
        let memoryRead = state.withLock { s -> Int? in
            guard s.fd < 0 else { return nil }
            let n = max(0, min(buffer.count, s.memory.count - Int(min(offset, UInt64(s.memory.count)))))
            if n > 0 {
                s.memory.withUnsafeBytes { m in
                    buffer.baseAddress!.copyMemory(from: m.baseAddress!.advanced(by: Int(offset)), byteCount: n)
                }
            }
            return n
        }
        if let memoryRead { return memoryRead }
        let fd = state.withLock { $0.fd }
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
        if state.withLock({ $0.created }) { unlink(path) }
    }

    private static var lastError: String { String(cString: strerror(errno)) }
}
