/// Archiving a tree or extracting one failed. Each case names the entry or
/// file and what libarchive or the system said.
package enum TreeArchiveError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A file of the source tree could not be read.
    case unreadable(path: String, reason: String)
    /// libarchive could not write the archive (or set it up).
    case writeFailed(operation: String, reason: String)
    /// Whoever takes the archive's bytes failed (disk full, stream cancelled).
    case output(reason: String)
    /// Whoever supplies the archive's bytes failed (stream broken, cancelled).
    case input(reason: String)
    /// The bytes are not a tar+zstd archive, or it is truncated.
    case malformed(reason: String)
    /// An entry would write outside the target: an absolute path, a `..`
    /// component, or a path through a symlink. Nothing was written for it.
    case escapes(entry: String, reason: String)
    /// An entry could not be written into the target.
    case extractFailed(entry: String, reason: String)
    /// The archive passes one of the receiver's limits (`TreeArchive.Limits`):
    /// `limit` names it and its configuration key; nothing past it was written.
    case overLimit(limit: String, detail: String)
    /// The target directory cannot be used.
    case badTarget(path: String, reason: String)

    package var description: String {
        switch self {
        case .unreadable(let path, let reason):
            "cannot archive \(path): \(reason)"
        case .writeFailed(let operation, let reason):
            "writing the tree archive failed in \(operation): \(reason)"
        case .output(let reason):
            "the tree archive's output failed: \(reason)"
        case .input(let reason):
            "the tree archive's input failed: \(reason)"
        case .malformed(let reason):
            "the tree archive is damaged or not tar+zstd: \(reason)"
        case .escapes(let entry, let reason):
            "tar entry \"\(entry)\" refused: \(reason); the archive tries to write outside its target directory"
        case .extractFailed(let entry, let reason):
            "cannot extract tar entry \"\(entry)\": \(reason)"
        case .overLimit(let limit, let detail):
            "the tree archive passes the limit on \(limit): \(detail); the tree was refused and its partial data removed"
        case .badTarget(let path, let reason):
            "cannot extract into \(path): \(reason)"
        }
    }
}
