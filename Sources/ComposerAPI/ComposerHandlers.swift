package import Foundation
package import Images
package import OpenAPIRuntime
package import Protocol
package import Scheduler

/// What each operation of openapi.yaml answers.
package struct ComposerHandlers: APIProtocol {
    /// Makes an image's manifest (the depsolve included): its JSON and the notes for its build.
    package typealias Generate = @Sendable (ImageRequest) async throws -> (manifest: [UInt8], notes: [String])

    /// The releases this scheduler builds, with the mirrors it uses.
    let distros: [Distro]
    let scheduler: FarmScheduler
    let generate: Generate
    /// One depsolve at a time (apt's lists and caches are shared).
    let depsolves = OneAtATime()

    package init(distros: [Distro], scheduler: FarmScheduler, generate: @escaping Generate) {
        self.distros = distros
        self.scheduler = scheduler
        self.generate = generate
    }

    /// The caller, set by the authentication middleware for every request that gets this far.
    var caller: TokenGrant {
        get throws {
            guard let grant = ComposerAPI.caller else { throw APIError(.unauthorized, "no token") }
            return grant
        }
    }

    package func getOpenapi(_ input: Operations.GetOpenapi.Input) async throws -> Operations.GetOpenapi.Output {
        .ok(.init(body: .json(Self.document)))
    }

    /// openapi.yaml, decoded once.
    static let document: OpenAPIObjectContainer = {
        do {
            return try JSONDecoder().decode(OpenAPIObjectContainer.self, from: Data(OpenAPIDocument.json.utf8))
        } catch {
            preconditionFailure("Generated/OpenAPIDocument.swift is not a JSON object (run ops/gen-openapi): \(error)")
        }
    }()

    package func getDistributionList(
        _ input: Operations.GetDistributionList.Input
    ) async throws
        -> Operations.GetDistributionList.Output
    {
        var list = Components.Schemas.DistributionList()
        for distro in distros {
            let repositories = distro.repositories.enumerated().map { index, r in
                Components.Schemas.BlueprintRepository(
                    id: index == 0 ? "\(distro.name)-archive" : "\(distro.name)-security",
                    name: "\(distro.name) \(r.suites.joined(separator: " "))",
                    baseurls: [r.uri], gpgcheck: true, enabled: true, suites: r.suites, components: r.components)
            }
            var arches = Components.Schemas.DistributionList.AdditionalPropertiesPayload()
            for arch in distro.architectures { arches.additionalProperties[arch.rawValue] = repositories }
            list.additionalProperties[distro.name] = arches
        }
        return .ok(.init(body: .json(list)))
    }

    // MARK: - Composes

    package func postCompose(_ input: Operations.PostCompose.Input) async throws -> Operations.PostCompose.Output {
        let caller = try caller
        guard case .json(let body) = input.body else { throw APIError(.badRequest, "the body: send application/json") }
        let plan = try ComposeTranslation.plan(body, distros: distros)
        let id = UUID().uuidString.lowercased()
        // Every manifest first (the depsolve may refuse a package): nothing is submitted for a request that fails.
        var manifests: [(image: ComposePlan.Image, manifest: [UInt8], notes: [String])] = []
        for (index, image) in plan.images.enumerated() {
            do {
                let made = try await depsolves.run { [generate] in try await generate(image.request) }
                manifests.append((image, made.manifest, made.notes))
            } catch let e as APIError {
                throw e
            } catch {
                let field = plan.images.count == 1 && body.imageRequest != nil ? "image_request" : "image_requests[\(index)]"
                throw APIError(.badRequest, "\(field): \(error)")
            }
        }
        var images: [ComposeImage] = []
        do {
            for m in manifests {
                let r = m.image.request
                let reply = try await scheduler.submit(
                    manifestJSON: m.manifest, exports: [r.imageType.exportPipeline], arch: r.architecture.rawValue,
                    label: "compose \(id.prefix(8)) \(r.distro.name) \(r.architecture.rawValue) \(m.image.requestedType)",
                    distro: r.distro.name, imageType: r.imageType.rawValue, notes: m.notes, clientKey: caller.identity)
                images.append(ComposeImage(buildID: reply.buildID, arch: r.architecture.rawValue, imageType: m.image.requestedType))
            }
            let request = (try? JSONEncoder().encode(body)) ?? Data()
            try await scheduler.recordCompose(
                id: id, owner: caller.identity, distribution: plan.distribution, request: request, images: images)
        } catch {
            // All or nothing: an image the scheduler refused (its disk is low, say) takes the others with it.
            await scheduler.cancelUnrecorded(images.map(\.buildID))
            throw error
        }
        return .created(.init(body: .json(.init(id: id, kind: "ComposeId", href: "\(ComposerAPI.basePath)/composes/\(id)"))))
    }

    package func getComposeStatus(_ input: Operations.GetComposeStatus.Input) async throws -> Operations.GetComposeStatus.Output {
        let caller = try caller
        let id = try Self.composeID(input.path.id)
        guard let view = try await scheduler.compose(id, owner: caller.owner) else {
            throw APIError(.notFound, "id: no compose \(id) that this token may see")
        }
        return .ok(.init(body: .json(Self.status(view))))
    }

    package func getComposeList(_ input: Operations.GetComposeList.Input) async throws -> Operations.GetComposeList.Output {
        let caller = try caller
        let page = input.query.page ?? 0, size = input.query.size ?? 100
        guard (0...1_000_000).contains(page) else { throw APIError(.badRequest, "page: \(page): give 0 … 1000000") }
        guard (1...1000).contains(size) else { throw APIError(.badRequest, "size: \(size): give 1 … 1000") }
        let (total, views) = try await scheduler.composes(owner: caller.owner, page: page, size: size)
        return .ok(
            .init(
                body: .json(
                    .init(
                        value1: .init(kind: "ComposeList", page: page, size: views.count, total: total),
                        value2: .init(items: views.map(Self.status))))))
    }

    /// A path's compose ID, or a 400 naming it.
    static func composeID(_ text: String) throws(APIError) -> String {
        guard let uuid = UUID(uuidString: text) else {
            throw APIError(.badRequest, "id: \"\(text.prefix(64))\" is not a compose ID (a UUID, as POST /compose returns)")
        }
        return uuid.uuidString.lowercased()
    }

    /// Composer's status of a compose: each image's, and the compose's from them.
    static func status(_ view: ComposeView) -> Components.Schemas.ComposeStatus {
        let images = view.images.map(imageStatus)
        let overall: Components.Schemas.ComposeStatusValue =
            images.contains { $0.status == .failure } ? .failure : images.allSatisfy { $0.status == .success } ? .success : .pending
        return .init(
            value1: .init(id: view.id, kind: "ComposeStatus", href: "\(ComposerAPI.basePath)/composes/\(view.id)"),
            value2: .init(
                status: overall, imageStatus: images.first ?? .init(status: .pending), imageStatuses: images))
    }

    static func imageStatus(_ image: ComposeImage) -> Components.Schemas.ImageStatus {
        switch image.state {
        case .queued: .init(status: .pending)
        case .running: .init(status: .building)
        case .succeeded: .init(status: .success)
        case .failed: .init(status: .failure, error: .init(id: 1, reason: image.failure.isEmpty ? "the build failed" : image.failure))
        case .cancelled: .init(status: .failure, error: .init(id: 2, reason: "cancelled"))
        case nil:
            .init(
                status: .failure,
                error: .init(id: 3, reason: "build \(image.buildID) is no longer recorded (the scheduler's --keep-history removed it)"))
        }
    }
}
