import Foundation

/// One image of a compose: the build it became and that build's state
/// (nil: retention removed the build).
package struct ComposeImage: Sendable, Equatable {
    package var buildID: String
    package var arch: String
    /// The image type as the request named it (composer's or Kiln's name).
    package var imageType: String
    package var state: BuildState?
    package var failure = ""

    /// An image as a new compose records it.
    package init(buildID: String, arch: String, imageType: String, state: BuildState? = nil) {
        (self.buildID, self.arch, self.imageType, self.state) = (buildID, arch, imageType, state)
    }
}

/// A compose of the HTTP API: who asked, and the build each image became
/// (in request order) with its state (nil: retention removed the build).
package struct ComposeView: Sendable, Equatable {
    package var id: String
    package var owner: String
    package var createdMS: Int64
    package var distribution: String
    package var images: [ComposeImage]
}

extension FarmScheduler {
    /// Records compose `id`, whose images' builds were submitted, with the
    /// request as it was sent; returns once it is durable.
    package nonisolated func recordCompose(
        id: String, owner: String, distribution: String, request: Data, images: [ComposeImage]
    ) async throws {
        try await records.insertCompose(
            ComposeView(id: id, owner: owner, createdMS: config.now(), distribution: distribution, images: images), request: request)
    }

    /// Compose `id` as `owner` sees it (nil owner: an admin, who sees every compose).
    package nonisolated func compose(_ id: String, owner: String?) async throws -> ComposeView? {
        try await records.compose(id, owner: owner)
    }

    /// One page of the composes `owner` sees (nil: all), newest first.
    package nonisolated func composes(owner: String?, page: Int, size: Int) async throws -> (total: Int, page: [ComposeView]) {
        try await records.composes(owner: owner, offset: page * size, limit: size)
    }

    /// The request compose `id` was made from (nil: none that `owner` may see).
    package nonisolated func composeRequest(_ id: String, owner: String?) async throws -> Data? {
        guard try await records.compose(id, owner: owner) != nil else { return nil }
        return try await records.composeRequest(id)
    }

    /// A build's manifest as it was submitted (nil: the build is gone).
    package nonisolated func manifest(ofBuild buildID: String) async throws -> Data? {
        try await records.manifest(buildID: buildID)
    }

    /// A build's artifacts: name, path on this host, size.
    package nonisolated func artifacts(ofBuild buildID: String) async throws -> [(name: String, path: String, size: Int64)] {
        try await records.artifacts(buildID: buildID)
    }

    /// Cancels builds a compose submitted before one of its later images was
    /// refused (nothing of a refused compose stays queued).
    package func cancelUnrecorded(_ buildIDs: [String]) async {
        for id in buildIDs where core.builds[id] != nil { _ = try? await cancel(buildID: id) }
    }

    /// Cancels what still runs of compose `id`, deletes its builds (files and
    /// records) and the compose. False: no such compose that `owner` may see.
    package func deleteCompose(_ id: String, owner: String?) async throws -> Bool {
        guard let view = try await records.compose(id, owner: owner) else { return false }
        for image in view.images where image.state != nil {
            if core.builds[image.buildID] != nil { _ = try await cancel(buildID: image.buildID) }
            _ = try await delete(buildID: image.buildID)
        }
        try await records.deleteCompose(id)
        return true
    }
}
