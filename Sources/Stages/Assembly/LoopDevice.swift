import Foundation

/// A loop device over a region of a file, for the few tools that need a
/// block device (mounting XFS to fill it). Detached afterwards, on success
/// and on failure.
package enum LoopDevice {
    package static func with<T: Sendable>(_ region: ResolvedRegion, in context: StageContext,
                                          _ body: (String) async throws -> T) async throws -> T {
        let device = try await context.output([
            "losetup", "--find", "--show", "--offset", String(region.offset), "--sizelimit", String(region.length), region.path,
        ]).trimmingCharacters(in: .whitespacesAndNewlines)
        guard device.hasPrefix("/dev/") else {
            throw StageError.treeInconsistent(reason: "losetup printed \"\(device)\" instead of a loop device for \(region.path)")
        }
        do {
            let result = try await body(device)
            try await context.run(["losetup", "--detach", device])
            return result
        } catch {
            try? await context.run(["losetup", "--detach", device])
            throw error
        }
    }
}
