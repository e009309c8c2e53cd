import Foundation

/// What the dynamic loader needs to know about an ELF64 file: its machine,
/// interpreter (`PT_INTERP`), needed libraries (`DT_NEEDED`) and search
/// paths (`DT_RPATH`/`DT_RUNPATH`). Reads little- and big-endian ELF64 files
/// of any machine without running them.
package struct ELFFile: Sendable, Equatable {
    /// `e_machine` (62 = x86_64, 183 = aarch64).
    package let machine: UInt16
    package let littleEndian: Bool
    /// `ET_EXEC` (2) or `ET_DYN` (3), …
    package let fileType: UInt16
    /// The program interpreter, e.g. `/lib64/ld-linux-x86-64.so.2`; nil for static binaries and libraries.
    package let interpreter: String?
    /// `DT_NEEDED` entries in file order.
    package let needed: [String]
    /// `DT_RPATH` entries (used only when there is no `DT_RUNPATH`).
    package let rpath: [String]
    /// `DT_RUNPATH` entries.
    package let runpath: [String]

    package static let machineX86_64: UInt16 = 62
    package static let machineAArch64: UInt16 = 183

    /// Whether `data` starts with the ELF magic.
    package static func isELF(_ data: Data) -> Bool {
        data.count >= 4 && data.prefix(4).elementsEqual([0x7F, 0x45, 0x4C, 0x46])
    }

    /// Class-independent header fields of the file at `path` (reads 20 bytes); nil when it is not ELF64.
    package static func header(atPath path: String) -> (machine: UInt16, littleEndian: Bool)? {
        guard let fh = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? fh.close() }
        guard let d = try? fh.read(upToCount: 20), d.count == 20, isELF(d), d[d.startIndex + 4] == 2 else { return nil }
        let b = [UInt8](d), le = b[5] == 1
        let machine = le ? UInt16(b[18]) | UInt16(b[19]) << 8 : UInt16(b[18]) << 8 | UInt16(b[19])
        return (machine, le)
    }

    /// Reads the file at `path`; returns nil when it is not an ELF file (a script, a text file).
    package init?(path: String) throws(ELFError) {
        guard let data = try? Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped) else { throw .unreadable(path: path) }
        guard Self.isELF(data) else { return nil }
        try self.init(data: data, path: path)
    }

    package init(data: Data, path: String = "<memory>") throws(ELFError) {
        let bytes = data.startIndex == 0 ? data : Data(data)
        guard bytes.count >= 64, bytes[0] == 0x7F, bytes[1] == 0x45, bytes[2] == 0x4C, bytes[3] == 0x46 else {
            throw .notELF(path: path)
        }
        guard bytes[4] == 2 else { throw .unsupported(path: path, reason: "only ELF64 is supported (EI_CLASS \(bytes[4]))") }
        let le: Bool
        switch bytes[5] {
        case 1: le = true
        case 2: le = false
        default: throw .unsupported(path: path, reason: "unknown byte order (EI_DATA \(bytes[5]))")
        }
        let r = Reader(bytes: bytes, littleEndian: le, path: path)
        littleEndian = le
        fileType = try r.u16(16)
        machine = try r.u16(18)
        let phoff = try r.u64(32)
        let phentsize = UInt64(try r.u16(54))
        let phnum = UInt64(try r.u16(56))

        struct Segment { let type: UInt32; let offset: UInt64; let vaddr: UInt64; let filesz: UInt64 }
        var segments: [Segment] = []
        for i in 0..<phnum {
            let base = phoff + i * phentsize
            segments.append(Segment(type: try r.u32(base), offset: try r.u64(base + 8), vaddr: try r.u64(base + 16),
                                    filesz: try r.u64(base + 32)))
        }
        var interp: String?
        if let s = segments.first(where: { $0.type == 3 }) {  // PT_INTERP
            interp = try r.cString(s.offset, limit: s.offset + s.filesz)
        }
        interpreter = interp

        var needed: [String] = [], rpath: [String] = [], runpath: [String] = []
        if let dyn = segments.first(where: { $0.type == 2 }) {  // PT_DYNAMIC
            var entries: [(tag: UInt64, val: UInt64)] = []
            var off = dyn.offset
            while off + 16 <= dyn.offset + dyn.filesz {
                let tag = try r.u64(off), val = try r.u64(off + 8)
                if tag == 0 { break }
                entries.append((tag, val))
                off += 16
            }
            // DT_STRTAB holds a virtual address: map it to a file offset via PT_LOAD.
            guard let strtabAddr = entries.first(where: { $0.tag == 5 })?.val else {
                throw .malformed(path: path, reason: "PT_DYNAMIC without DT_STRTAB")
            }
            guard let load = segments.first(where: { $0.type == 1 && strtabAddr >= $0.vaddr && strtabAddr < $0.vaddr + $0.filesz }) else {
                throw .malformed(path: path, reason: "DT_STRTAB address 0x\(String(strtabAddr, radix: 16)) is in no PT_LOAD segment")
            }
            let strtab = strtabAddr - load.vaddr + load.offset
            for e in entries {
                switch e.tag {
                case 1: needed.append(try r.cString(strtab + e.val))                                       // DT_NEEDED
                case 15: rpath += try r.cString(strtab + e.val).split(separator: ":").map(String.init)     // DT_RPATH
                case 29: runpath += try r.cString(strtab + e.val).split(separator: ":").map(String.init)   // DT_RUNPATH
                default: break
                }
            }
        }
        self.needed = needed
        self.rpath = rpath
        self.runpath = runpath
    }

    /// Bounds-checked reads in the file's byte order.
    private struct Reader {
        /// Indexed from 0; only the headers, the dynamic section and its strings are ever touched.
        let bytes: Data
        let littleEndian: Bool
        let path: String

        func check(_ offset: UInt64, _ size: UInt64) throws(ELFError) -> Int {
            guard offset <= UInt64(bytes.count), UInt64(bytes.count) - offset >= size else {
                throw .malformed(path: path, reason: "read of \(size) bytes at offset \(offset) is past the end (\(bytes.count) bytes)")
            }
            return Int(offset)
        }

        func uint(_ offset: UInt64, _ size: Int) throws(ELFError) -> UInt64 {
            let o = try check(offset, UInt64(size))
            var v: UInt64 = 0
            for i in 0..<size {
                let b = UInt64(bytes[o + (littleEndian ? size - 1 - i : i)])
                v = (v << 8) | b
            }
            return v
        }

        func u16(_ offset: UInt64) throws(ELFError) -> UInt16 { UInt16(try uint(offset, 2)) }
        func u32(_ offset: UInt64) throws(ELFError) -> UInt32 { UInt32(try uint(offset, 4)) }
        func u64(_ offset: UInt64) throws(ELFError) -> UInt64 { try uint(offset, 8) }

        func cString(_ offset: UInt64, limit: UInt64? = nil) throws(ELFError) -> String {
            var end = try check(offset, 0)
            let stop = min(Int(limit ?? UInt64(bytes.count)), bytes.count)
            while end < stop, bytes[end] != 0 { end += 1 }
            return String(decoding: bytes[Int(offset)..<end], as: UTF8.self)  // `bytes` starts at index 0
        }
    }
}
