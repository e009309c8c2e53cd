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
    /// `Priority` (`required`, `important`, `standard`, `optional`), if the package states one.
    package let priority: String?
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
            priority: fields["priority"]?.lowercased(),
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
        var files: [String] = []
        try forEachEntry(path, member: "data.tar") { name, _ in files.append(name) }
        return files
    }

    /// The `control` file's text and the names of all control members.
    private static func readControl(_ path: String) throws(DebianInstallError) -> (String, Set<String>) {
        var control: String?
        var members: Set<String> = []
        try forEachEntry(path, member: "control.tar") { name, archive in
            let member = String(name.dropFirst())
            members.insert(member)
            guard member == "control" else { return }
            var bytes: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 16 << 10)
            while true {
                let n = buffer.withUnsafeMutableBytes { archive_read_data(archive, $0.baseAddress, $0.count) }
                if n <= 0 { break }
                bytes.append(contentsOf: buffer[..<n])
            }
            control = String(decoding: bytes, as: UTF8.self)
        }
        guard let control else { throw .badPackage(path: path, reason: "control archive has no control file") }
        return (control, members)
    }

    /// Streams the tar member of the `.deb` whose name starts with `prefix` and calls
    /// `body` with each entry's path (`/usr/bin/x`; the root itself is skipped) and the
    /// archive positioned at that entry's data.
    private static func forEachEntry(_ path: String, member prefix: String,
                                     _ body: (String, OpaquePointer) -> Void) throws(DebianInstallError) {
        guard let outer = archive_read_new() else { throw .badPackage(path: path, reason: "libarchive: out of memory") }
        defer { archive_read_free(outer) }
        archive_read_support_format_ar(outer)
        guard archive_read_open_filename(outer, path, 64 << 10) == ARCHIVE_OK else {
            throw .badPackage(path: path, reason: archiveMessage(outer))
        }
        var entry: OpaquePointer?
        while archive_read_next_header(outer, &entry) == ARCHIVE_OK {
            guard String(cString: archive_entry_pathname(entry)).hasPrefix(prefix) else { continue }
            // The member is decompressed as a stream straight from the outer archive.
            guard let inner = archive_read_new() else { throw .badPackage(path: path, reason: "libarchive: out of memory") }
            defer { archive_read_free(inner) }
            archive_read_support_filter_all(inner)
            archive_read_support_format_tar(inner)
            let reader = OuterReader(outer)
            defer { withExtendedLifetime(reader) {} }
            guard archive_read_open(inner, Unmanaged.passUnretained(reader).toOpaque(), nil, { _, context, buffer in
                Unmanaged<OuterReader>.fromOpaque(context!).takeUnretainedValue().read(buffer)
            }, nil) == ARCHIVE_OK else { throw .badPackage(path: path, reason: archiveMessage(inner)) }
            var e: OpaquePointer?
            while true {
                let rc = archive_read_next_header(inner, &e)
                if rc == ARCHIVE_EOF { return }
                guard rc == ARCHIVE_OK || rc == ARCHIVE_WARN else { throw .badPackage(path: path, reason: archiveMessage(inner)) }
                var name = String(cString: archive_entry_pathname(e))
                if name.hasPrefix(".") { name.removeFirst() }
                if !name.hasPrefix("/") { name = "/" + name }
                while name.count > 1 && name.hasSuffix("/") { name.removeLast() }
                if name != "/" { body(name, inner) }
            }
        }
        throw .badPackage(path: path, reason: "not a Debian package: no \(prefix) member")
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
