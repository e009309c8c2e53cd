import Foundation

/// A size in bytes as a manifest writes it: an integer, or a string of
/// digits with an optional unit (`kB`, `KiB`, `MB`, `MiB`, `GB`, `GiB`,
/// `TB`, `TiB`), as osbuild accepts.
package struct ByteSize: Codable, Sendable, Hashable {
    package let bytes: UInt64
    /// How the manifest wrote it, kept so the option round-trips.
    private let written: String?

    package init(bytes: UInt64) {
        self.init(bytes: bytes, written: nil)
    }

    private init(bytes: UInt64, written: String?) {
        self.bytes = bytes
        self.written = written
    }

    package init(parsing text: String, field: String) throws {
        guard let bytes = Self.parse(text) else { throw AssemblyError.badSize(field: field, value: text) }
        self.init(bytes: bytes, written: text)
    }

    package init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let n = try? c.decode(UInt64.self) {
            self.init(bytes: n)
        } else {
            let text = try c.decode(String.self)
            guard let bytes = Self.parse(text) else {
                throw DecodingError.dataCorruptedError(in: c, debugDescription: AssemblyError.badSize(field: "size", value: text).description)
            }
            self.init(bytes: bytes, written: text)
        }
    }

    package func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        if let written { try c.encode(written) } else { try c.encode(bytes) }
    }

    private static let units: [(String, UInt64)] = [
        ("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30), ("TiB", 1 << 40),
        ("kB", 1_000), ("KB", 1_000), ("MB", 1_000_000), ("GB", 1_000_000_000), ("TB", 1_000_000_000_000),
        ("B", 1),
    ]

    static func parse(_ text: String) -> UInt64? {
        var s = Substring(text.trimmingCharacters(in: .whitespaces))
        var factor: UInt64 = 1
        for (suffix, f) in units where s.hasSuffix(suffix) {
            s = s.dropLast(suffix.count)
            factor = f
            break
        }
        s = Substring(s.trimmingCharacters(in: .whitespaces))
        guard !s.isEmpty, s.allSatisfy(\.isASCII), let n = UInt64(s) else { return nil }
        let (product, overflow) = n.multipliedReportingOverflow(by: factor)
        return overflow ? nil : product
    }
}
