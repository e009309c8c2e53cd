import Foundation
import StageOptions

#if canImport(Glibc)
import Glibc
#endif

/// `org.osbuild.truncate`: creates (or resizes) a sparse file.
package struct Truncate: Stage {
    package typealias Options = TruncateOptions
    package static let type = Options.stageType
    package static let sourceFile = StageSource.path()
    package static let placement = Placement.assembly

    package init() {}

    package func run(_ options: Options, in context: StageContext) async throws {
        let path = try context.outputFile(options.filename)
        try FileManager.default.createDirectory(
            atPath: (path as NSString).deletingLastPathComponent,
            withIntermediateDirectories: true)
        let fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw StageError.badPath(path: path, reason: "cannot create: \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        guard ftruncate(fd, off_t(options.size.bytes)) == 0 else {
            throw StageError.badPath(path: path, reason: "cannot set size to \(options.size.bytes) bytes: \(String(cString: strerror(errno)))")
        }
    }
}
