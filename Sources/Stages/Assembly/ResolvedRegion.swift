/// A device region with its file checked and its length known: where a
/// filesystem is written, in bytes.
package struct ResolvedRegion: Sendable, Hashable {
    package let path: String
    package let offset: UInt64
    package let length: UInt64

    package init(path: String, offset: UInt64, length: UInt64) {
        self.path = path
        self.offset = offset
        self.length = length
    }

    /// Checks `region` against its file; a relative path is taken inside `tree`.
    package init(_ region: DeviceRegion, tree: String) throws {
        let path = region.path.hasPrefix("/") ? region.path : try TreePath.resolve("/" + region.path, in: tree)
        let fileSize = try DiskFile.size(of: path)
        let end = region.size.map { region.offset + $0 } ?? fileSize
        guard region.offset < end, end <= fileSize else {
            throw AssemblyError.regionOutsideFile(path: path, offset: region.offset, size: region.size, fileSize: fileSize)
        }
        self.init(path: path, offset: region.offset, length: end - region.offset)
    }

    /// Turns the region into a hole: it reads as zeros and the file stays sparse.
    package func clear(in context: StageContext) async throws {
        try await context.run(["fallocate", "--punch-hole", "--keep-size",
                               "--offset", String(offset), "--length", String(length), path])
    }
}
