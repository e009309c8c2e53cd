#if canImport(Glibc)
import Glibc
#endif

/// A CURVE key file that cannot be written or used.
package enum KeyFileError: Error, Equatable, CustomStringConvertible {
    /// The file exists already; keys are never overwritten.
    case exists(path: String)
    /// The file could not be read.
    case unreadable(path: String, errno: Int32)
    /// The file could not be created or written.
    case unwritable(path: String, errno: Int32)
    /// The file does not hold one Z85 CURVE key.
    case malformed(path: String, reason: String)
    /// A secret key file that others may read.
    case tooOpen(path: String, mode: UInt32)

    package var description: String {
        switch self {
        case .exists(let path):
            "\(path) exists; remove it first or choose another name (keys are never overwritten)"
        case .unreadable(let path, let code):
            "cannot read \(path): \(String(cString: strerror(code)))"
        case .unwritable(let path, let code):
            "cannot write \(path): \(String(cString: strerror(code)))"
        case .malformed(let path, let reason):
            "\(path): \(reason); expected one 40-character Z85 CURVE key as written by `kiln keys new`"
        case .tooOpen(let path, let mode):
            "\(path) has mode \(String(mode, radix: 8)); a secret key must be private: chmod 600 \(path)"
        }
    }
}
