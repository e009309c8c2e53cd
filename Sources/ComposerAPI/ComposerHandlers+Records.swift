package import Foundation
package import Images
package import OpenAPIRuntime
package import Protocol
package import Scheduler

// What a compose left: its request and packages, manifests, logs, the image; and deleting it.
extension ComposerHandlers {
    /// The compose `id` names, if the caller may see it; else a 400 or 404 naming it.
    func visibleCompose(_ text: String) async throws -> (ComposeView, TokenGrant) {
        let caller = try caller
        let id = try Self.composeID(text)
        guard let view = try await scheduler.compose(id, owner: caller.owner) else {
            throw APIError(.notFound, "id: no compose \(id) that this token may see")
        }
        return (view, caller)
    }

    static func reference(_ view: ComposeView, kind: String, _ suffix: String) -> Components.Schemas.ObjectReference {
        .init(id: view.id, kind: kind, href: "\(ComposerAPI.basePath)/composes/\(view.id)\(suffix)")
    }

    static func container(_ json: Data) throws -> OpenAPIObjectContainer {
        try JSONDecoder().decode(OpenAPIObjectContainer.self, from: json)
    }

    static func container(_ object: [String: Any]) throws -> OpenAPIObjectContainer {
        try container(try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]))
    }

    package func getComposeMetadata(_ input: Operations.GetComposeMetadata.Input) async throws -> Operations.GetComposeMetadata.Output {
        let (view, caller) = try await visibleCompose(input.path.id)
        var packages = Set<PackageRecord>()
        for image in view.images {
            guard let manifest = try await scheduler.manifest(ofBuild: image.buildID) else { continue }
            packages.formUnion(PackageRecord.all(inManifest: manifest) ?? [])
        }
        let request = try await scheduler.composeRequest(view.id, owner: caller.owner)
        let metadata = packages.sorted { ($0.name, $0.version, $0.architecture) < ($1.name, $1.version, $1.architecture) }
            .map { p in
                Components.Schemas.PackageMetadata(
                    _type: "deb", name: p.name, version: p.versionWithoutEpoch, release: "", epoch: p.epoch, arch: p.architecture,
                    sigmd5: "", checksum: "sha256:\(p.sha256)", source: p.source, url: p.url)
            }
        return .ok(
            .init(
                body: .json(
                    .init(
                        value1: Self.reference(view, kind: "ComposeMetadata", "/metadata"),
                        value2: .init(packages: metadata, request: try request.map(Self.container))))))
    }

    package func getComposeSBOMs(_ input: Operations.GetComposeSBOMs.Input) async throws -> Operations.GetComposeSBOMs.Output {
        let (view, _) = try await visibleCompose(input.path.id)
        var items: [[Components.Schemas.ImageSBOM]] = []
        for (index, image) in view.images.enumerated() {
            guard let manifest = try await scheduler.manifest(ofBuild: image.buildID) else {
                items.append([])
                continue
            }
            let sbom = SPDXDocument.json(
                imageName: "\(view.distribution) \(image.arch) \(image.imageType) (compose \(view.id))", distro: view.distribution,
                packages: PackageRecord.all(inManifest: manifest) ?? [],
                namespace: "https://kiln.invalid/spdx/\(view.id)/\(index)",
                created: Date(timeIntervalSince1970: Double(view.createdMS) / 1000), tool: "kiln-\(FarmScheduler.version)")
            items.append([.init(sbom: try Self.container(sbom), sbomType: .spdx, pipelineName: "os", pipelinePurpose: .image)])
        }
        return .ok(
            .init(body: .json(.init(value1: Self.reference(view, kind: "ComposeSBOMs", "/sboms"), value2: .init(items: items)))))
    }

    package func getComposeManifests(_ input: Operations.GetComposeManifests.Input) async throws -> Operations.GetComposeManifests.Output {
        let (view, _) = try await visibleCompose(input.path.id)
        var manifests: [OpenAPIObjectContainer] = []
        for image in view.images {
            if let manifest = try await scheduler.manifest(ofBuild: image.buildID) { manifests.append(try Self.container(manifest)) }
        }
        return .ok(
            .init(
                body: .json(
                    .init(value1: Self.reference(view, kind: "ComposeManifests", "/manifests"), value2: .init(manifests: manifests)))))
    }

    package func getComposeLogs(_ input: Operations.GetComposeLogs.Input) async throws -> Operations.GetComposeLogs.Output {
        let (view, _) = try await visibleCompose(input.path.id)
        var logs: [OpenAPIObjectContainer] = []
        for image in view.images {
            let text = image.state == nil ? "" : ((try? await scheduler.logText(buildID: image.buildID)) ?? "")
            logs.append(
                try Self.container([
                    "build_id": image.buildID, "arch": image.arch, "image_type": image.imageType,
                    "status": Self.imageStatus(image).status.rawValue, "log": text,
                ]))
        }
        return .ok(
            .init(body: .json(.init(value1: Self.reference(view, kind: "ComposeLogs", "/logs"), value2: .init(imageBuilds: logs)))))
    }

    package func getComposeDownload(_ input: Operations.GetComposeDownload.Input) async throws -> Operations.GetComposeDownload.Output {
        let (view, _) = try await visibleCompose(input.path.id)
        guard let image = view.images.first else { throw APIError(.notFound, "compose \(view.id) has no image") }
        switch image.state {
        case .succeeded: break
        case .queued, .running:
            throw APIError(.badRequest, "compose \(view.id) is not finished: its image is not built yet; GET /composes/\(view.id) says when it is")
        case .failed, .cancelled:
            throw APIError(.notFound, "compose \(view.id) failed: it has no image; GET /composes/\(view.id)/logs says why")
        case nil:
            throw APIError(.notFound, "compose \(view.id)'s build is no longer recorded (the scheduler's --keep-history)")
        }
        let artifacts = try await scheduler.artifacts(ofBuild: image.buildID)
        guard let artifact = artifacts.first, let file = FileChunks(path: artifact.path) else {
            throw APIError(.notFound, "compose \(view.id)'s image was removed (the scheduler's --keep-artifacts)")
        }
        return .ok(.init(body: .binary(HTTPBody(file, length: .known(artifact.size), iterationBehavior: .single))))
    }

    package func deleteCompose(_ input: Operations.DeleteCompose.Input) async throws -> Operations.DeleteCompose.Output {
        let (view, caller) = try await visibleCompose(input.path.id)
        guard try await scheduler.deleteCompose(view.id, owner: caller.owner) else {
            throw APIError(.notFound, "id: no compose \(view.id) that this token may see")
        }
        return .ok(.init(body: .json(.init(id: view.id, kind: "ComposeDeleteStatus", href: "\(ComposerAPI.basePath)/composes/\(view.id)"))))
    }
}

/// A file read in chunks as the client takes them (an image can be many GiB).
struct FileChunks: AsyncSequence, Sendable {
    typealias Element = ArraySlice<UInt8>
    static let chunk = 1 << 20

    /// Closed when the last reference goes (the answer was sent, or the client went away).
    final class Descriptor: Sendable {
        let fd: Int32
        init(_ fd: Int32) { self.fd = fd }
        deinit { close(fd) }
    }

    let file: Descriptor

    init?(path: String) {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { return nil }
        file = Descriptor(fd)
    }

    struct Iterator: AsyncIteratorProtocol {
        let file: Descriptor

        mutating func next() async throws -> ArraySlice<UInt8>? {
            var buffer = [UInt8](repeating: 0, count: FileChunks.chunk)
            let n = buffer.withUnsafeMutableBytes { read(file.fd, $0.baseAddress, $0.count) }
            if n < 0 { throw APIError(.internalError, "reading the image failed: errno \(errno)") }
            return n == 0 ? nil : buffer[0..<n]
        }
    }

    func makeAsyncIterator() -> Iterator { Iterator(file: file) }
}
