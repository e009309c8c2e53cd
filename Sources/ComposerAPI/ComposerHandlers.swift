package import Foundation
import Images
package import OpenAPIRuntime

/// What each operation of openapi.yaml answers.
package struct ComposerHandlers: APIProtocol {
    /// The releases this scheduler builds, with the mirrors it uses.
    let distros: [Distro]

    package init(distros: [Distro]) {
        self.distros = distros
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
}
