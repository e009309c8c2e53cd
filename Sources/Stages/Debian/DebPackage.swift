import CArchive
import Foundation

/// What the installer needs to know about one `.deb` file, read from its
/// control archive in-process (libarchive): no `dpkg-deb` per package.
package struct DebPackage: Sendable, Hashable {
    /// Path of the file (in the source cache its name is a digest, no `.deb`).
    package let path: String
    package let name: String
    package let version: String
    package let architecture: String
    package let essential: Bool
    package let multiArch: String?
    /// `Pre-Depends`, each entry a list of alternatives (package names only).
    package let preDepends: [[String]]
    package let depends: [[String]]
    package let provides: [String]
    /// Names of the control members (`preinst`, `postinst`, `conffiles`, …).
    package let controlMembers: Set<String>

    package var hasPreinst: Bool { controlMembers.contains("preinst") }

    /// Reads the control fields of the `.deb` at `path`.
    package static func read(_ path: String) throws(DebianInstallError) -> DebPackage {
        let (control, members) = try readControl(path)
        let fields = parseFields(control)
        guard let name = fields["package"], let version = fields["version"], let arch = fields["architecture"] else {
            throw .badPackage(path: path, reason: "control file lacks Package, Version or Architecture")
        }
        return DebPackage(
            path: path, name: name, version: version, architecture: arch,
            essential: fields["essential"]?.lowercased() == "yes",
            multiArch: fields["multi-arch"],
            preDepends: parseRelations(fields["pre-depends"]),
            depends: parseRelations(fields["depends"]),
            provides: parseRelations(fields["provides"]).compactMap(\.first),
            controlMembers: members)
    }

    /// RFC 822-style control paragraph → lower-cased field name → value (continuation lines joined).
    package static func parseFields(_ text: String) -> [String: String] {
        var fields: [String: String] = [:]
        var current: String?
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.first == " " || line.first == "\t" {
                if let c = current { fields[c, default: ""] += "\n" + line }
            } else if let colon = line.firstIndex(of: ":") {
                let key = line[..<colon].lowercased()
                fields[key] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
                current = key
            }
        }
        return fields
    }

    /// `a (>= 1) | b:any, c` → `[["a", "b"], ["c"]]`.
    package static func parseRelations(_ value: String?) -> [[String]] {
        guard let value, !value.isEmpty else { return [] }
        return value.split(separator: ",").map { group in
            group.split(separator: "|").compactMap { alt in
                var s = alt.trimmingCharacters(in: .whitespacesAndNewlines)
                if let i = s.firstIndex(where: { $0 == " " || $0 == "(" || $0 == "[" || $0 == "<" }) { s = String(s[..<i]) }
                if let i = s.firstIndex(of: ":") { s = String(s[..<i]) }
                return s.isEmpty ? nil : s
            }
        }.filter { !$0.isEmpty }
    }

    /// Paths of the package's files as dpkg records them (`/usr/sbin/depmod`), read from its data archive.
    package static func listFiles(_ path: String) throws(DebianInstallError) -> [String] {
        guard let outer = archive_read_new() else { throw .badPackage(path: path, reason: "libarchive: out of memory") }
        defer { archive_read_free(outer) }
        archive_read_support_format_ar(outer)
        guard archive_read_open_filename(outer, path, 64 << 10) == ARCHIVE_OK else {
            throw .badPackage(path: path, reason: archiveMessage(outer))
        }
        var entry: OpaquePointer?
        while archive_read_next_header(outer, &entry) == ARCHIVE_OK {
            guard String(cString: archive_entry_pathname(entry)).hasPrefix("data.tar") else { continue }
            // The data member is read as a stream straight from the outer archive.
            guard let inner = archive_read_new() else { throw .badPackage(path: path, reason: "libarchive: out of memory") }
            defer { archive_read_free(inner) }
            archive_read_support_filter_all(inner)
            archive_read_support_format_tar(inner)
            let reader = OuterReader(outer)
            defer { withExtendedLifetime(reader) {} }
            let box = Unmanaged.passUnretained(reader).toOpaque()
            guard archive_read_open(inner, box, nil, { _, ctx, buf in
                let reader = Unmanaged<OuterReader>.fromOpaque(ctx!).takeUnretainedValue()
                return reader.read(buf)
            }, nil) == ARCHIVE_OK else { throw .badPackage(path: path, reason: archiveMessage(inner)) }
            var files: [String] = []
            var e: OpaquePointer?
            while archive_read_next_header(inner, &e) == ARCHIVE_OK {
                var name = String(cString: archive_entry_pathname(e))
                if name.hasPrefix(".") { name.removeFirst() }
                if name.hasSuffix("/") { name.removeLast() }
                if !name.isEmpty { files.append(name) }
            }
            return files
        }
        throw .badPackage(path: path, reason: "not a Debian package: no data.tar member")
    }

    /// The `control` file's text and the names of all control members.
    private static func readControl(_ path: String) throws(DebianInstallError) -> (String, Set<String>) {
        guard let outer = archive_read_new() else { throw .badPackage(path: path, reason: "libarchive: out of memory") }
        defer { archive_read_free(outer) }
        archive_read_support_format_ar(outer)
        guard archive_read_open_filename(outer, path, 64 << 10) == ARCHIVE_OK else {
            throw .badPackage(path: path, reason: archiveMessage(outer))
        }
        var entry: OpaquePointer?
        while archive_read_next_header(outer, &entry) == ARCHIVE_OK {
            let member = String(cString: archive_entry_pathname(entry))
            guard member.hasPrefix("control.tar") else { continue }
            var data: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 64 << 10)
            while true {
                let n = buffer.withUnsafeMutableBytes { archive_read_data(outer, $0.baseAddress, $0.count) }
                if n < 0 { throw .badPackage(path: path, reason: archiveMessage(outer)) }
                if n == 0 { break }
                data.append(contentsOf: buffer[..<n])
            }
            return try readControlTar(data, path)
        }
        throw .badPackage(path: path, reason: "not a Debian package: no control.tar member")
    }

    private static func readControlTar(_ data: [UInt8], _ path: String) throws(DebianInstallError) -> (String, Set<String>) {
        guard let inner = archive_read_new() else { throw .badPackage(path: path, reason: "libarchive: out of memory") }
        defer { archive_read_free(inner) }
        archive_read_support_filter_all(inner)
        archive_read_support_format_tar(inner)
        var control: String?
        var members: Set<String> = []
        let result: Result<Void, DebianInstallError> = data.withUnsafeBytes { raw in
            guard archive_read_open_memory(inner, raw.baseAddress, raw.count) == ARCHIVE_OK else {
                return .failure(.badPackage(path: path, reason: archiveMessage(inner)))
            }
            var entry: OpaquePointer?
            while archive_read_next_header(inner, &entry) == ARCHIVE_OK {
                var name = String(cString: archive_entry_pathname(entry))
                if name.hasPrefix("./") { name.removeFirst(2) }
                guard !name.isEmpty, !name.hasSuffix("/") else { continue }
                members.insert(name)
                if name == "control" {
                    var bytes: [UInt8] = []
                    var buffer = [UInt8](repeating: 0, count: 16 << 10)
                    while true {
                        let n = buffer.withUnsafeMutableBytes { archive_read_data(inner, $0.baseAddress, $0.count) }
                        if n <= 0 { break }
                        bytes.append(contentsOf: buffer[..<n])
                    }
                    control = String(decoding: bytes, as: UTF8.self)
                }
            }
            return .success(())
        }
        try result.get()
        guard let control else { throw .badPackage(path: path, reason: "control archive has no control file") }
        return (control, members)
    }

    private static func archiveMessage(_ a: OpaquePointer) -> String {
        archive_error_string(a).map { String(cString: $0) } ?? "unreadable archive"
    }
}

/// Feeds the current member of an outer (ar) archive to an inner libarchive reader.
private final class OuterReader {
    let outer: OpaquePointer
    let size = 256 << 10
    let buffer: UnsafeMutableRawPointer
    init(_ outer: OpaquePointer) {
        self.outer = outer
        buffer = .allocate(byteCount: size, alignment: 16)
    }
    deinit { buffer.deallocate() }

    func read(_ out: UnsafeMutablePointer<UnsafeRawPointer?>?) -> Int {
        out?.pointee = UnsafeRawPointer(buffer)
        return archive_read_data(outer, buffer, size)
    }
}
