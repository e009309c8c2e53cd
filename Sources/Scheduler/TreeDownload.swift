// TEMPORARY compile placeholder; replaced by wip-stream's implementation. Do not commit.
import Protocol
import Stages
package struct DownloadStats: Sendable { package var compressedBytes: UInt64 = 0; package var seconds: Double = 0; package var resends: Int = 0 }
package final class TreeDownload: Sendable {
    package init(attemptID: UInt64, pipelineID: String, store: TreeStore, window: UInt64,
                 send: @escaping @Sendable (WireMessage) async throws -> Void) throws {}
    package func start(restart: Bool) async {}
    package func deliver(_ message: WireMessage) {}
    package func result() async throws -> DownloadStats { throw CancellationError() }
    package func cancel() {}
}
