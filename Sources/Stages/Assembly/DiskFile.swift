import Foundation
import SystemPackage

/// Reads and writes a few bytes at fixed offsets of a disk image file,
/// without ever loading the whole image.
package enum DiskFile {
    package static func size(of path: String) throws -> UInt64 {
        do {
            let fd = try FileDescriptor.open(FilePath(path), .readOnly)
            defer { try? fd.close() }
            return UInt64(try fd.seek(offset: 0, from: .end))
        } catch {
            throw StageError.badPath(path: path, reason: "cannot open: \(error)")
        }
    }

    package static func read(_ path: String, offset: UInt64, count: Int) throws -> [UInt8] {
        do {
            let fd = try FileDescriptor.open(FilePath(path), .readOnly)
            defer { try? fd.close() }
            var bytes = [UInt8](repeating: 0, count: count)
            var done = 0
            while done < count {
                let n = try bytes.withUnsafeMutableBytes { buffer in
                    try fd.read(fromAbsoluteOffset: Int64(offset) + Int64(done),
                                into: UnsafeMutableRawBufferPointer(rebasing: buffer[done...]))
                }
                if n == 0 { break }
                done += n
            }
            guard done == count else {
                throw StageError.badPath(path: path, reason: "short read: \(done) of \(count) bytes at offset \(offset)")
            }
            return bytes
        } catch let error as StageError {
            throw error
        } catch {
            throw StageError.badPath(path: path, reason: "cannot read \(count) bytes at offset \(offset): \(error)")
        }
    }

    package static func write(_ bytes: [UInt8], to path: String, offset: UInt64) throws {
        do {
            let fd = try FileDescriptor.open(FilePath(path), .readWrite)
            defer { try? fd.close() }
            _ = try fd.writeAll(toAbsoluteOffset: Int64(offset), bytes)
        } catch {
            throw StageError.badPath(path: path, reason: "cannot write \(bytes.count) bytes at offset \(offset): \(error)")
        }
    }

    /// Stores `value` little-endian into `bytes` at `offset`.
    package static func putLE(_ value: UInt64, into bytes: inout [UInt8], at offset: Int, width: Int = 8) {
        for i in 0..<width { bytes[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(i))) }
    }

    package static func getLE(_ bytes: [UInt8], at offset: Int, width: Int) -> UInt64 {
        var v: UInt64 = 0
        for i in (0..<width).reversed() { v = v << 8 | UInt64(bytes[offset + i]) }
        return v
    }
}
