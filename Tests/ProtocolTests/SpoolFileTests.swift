import Foundation
import Protocol
import Testing

/// A spool with a memory limit: small streams never touch the disk, larger
/// ones move to the file at the limit without losing a byte.
struct SpoolFileTests {
    @Test func smallStreamStaysInMemoryAndLargeOneSpillsIntact() throws {
        let path = NSTemporaryDirectory() + "kiln-spool-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let spool = try SpoolFile(path: path, create: true, memoryLimit: 1000)
        let a = [UInt8](repeating: 1, count: 600)
        let b = [UInt8](repeating: 2, count: 300)
        try spool.write(b, at: 600)              // out of order
        try spool.write(a, at: 0)
        #expect(!FileManager.default.fileExists(atPath: path), "within the limit: no file")
        #expect(try spool.read(900, at: 0) == a + b)
        var tail = [UInt8](repeating: 0, count: 50)
        let got = try tail.withUnsafeMutableBytes { buffer in
            Result { () throws(StreamError) in try spool.read(into: buffer, at: 880) }
        }.get()
        #expect(got == 20, "a read past the end returns what there is")

        let c = [UInt8](repeating: 3, count: 500)
        try spool.write(c, at: 900)              // crosses the limit
        #expect(FileManager.default.fileExists(atPath: path))
        #expect(try spool.read(1400, at: 0) == a + b + c)
        try spool.write(a, at: 0)                // a duplicate after the move
        #expect(try spool.read(1400, at: 0) == a + b + c)
        spool.remove()
        #expect(!FileManager.default.fileExists(atPath: path))
    }
}
