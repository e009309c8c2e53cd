/// An ELF file that Kiln cannot read.
package enum ELFError: Error, Sendable, CustomStringConvertible {
    /// The file could not be read.
    case unreadable(path: String)
    /// The file does not start with the ELF magic.
    case notELF(path: String)
    /// An ELF variant Kiln does not read (32-bit, unknown byte order).
    case unsupported(path: String, reason: String)
    /// Headers point outside the file or are inconsistent.
    case malformed(path: String, reason: String)

    package var description: String {
        switch self {
        case .unreadable(let path): "\(path): cannot read the file"
        case .notELF(let path): "\(path): not an ELF file"
        case .unsupported(let path, let reason): "\(path): \(reason)"
        case .malformed(let path, let reason): "\(path): malformed ELF file: \(reason); reinstall the package that ships it"
        }
    }
}
