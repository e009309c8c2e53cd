// TEMPORARY compile placeholder; replaced by wip-stream's implementation. Do not commit.
import Protocol
package struct UploadStats: Sendable { package var bytes: UInt64 = 0; package var seconds: Double = 0 }
package final class TreeUpload: Sendable {
    package init(attemptID: UInt64, tree: String, spoolDirectory: String, maxChunkBytes: Int,
                 send: @escaping @Sendable (WireMessage) async throws -> Void) {}
    package func deliver(_ message: WireMessage) {}
    package func run() async throws -> UploadStats { throw CancellationError() }
}
