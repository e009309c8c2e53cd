import Manifest

/// What to build: a blueprint for a distro, an architecture and an image type.
package struct ImageRequest: Sendable, Equatable {
    package var blueprint: Blueprint
    package var distro: Distro
    package var architecture: Architecture
    package var imageType: ImageType

    package init(blueprint: Blueprint, distro: Distro, architecture: Architecture, imageType: ImageType) {
        self.blueprint = blueprint
        self.distro = distro
        self.architecture = architecture
        self.imageType = imageType
    }

    /// A request from command-line names. A nil distro or architecture is
    /// taken from the blueprint; when both name one they must agree.
    package static func make(blueprint: Blueprint, distro: String?, architecture: String?, imageType: String,
                             mirror: String? = nil, securityMirror: String? = nil) throws(DefinitionError) -> ImageRequest {
        let file = blueprint.origin.file
        guard let distroName = distro ?? blueprint.distro, !distroName.isEmpty else {
            throw .notSpecified(what: "distro", flag: "--distro", known: Distro.all.map(\.name))
        }
        let d = try Distro.named(distroName)
        if let bp = blueprint.distro, !bp.isEmpty, try Distro.named(bp).name != d.name {
            throw .blueprintMismatch(file: file, key: "distro", blueprint: bp, request: distroName)
        }
        guard let archName = architecture ?? blueprint.architecture else {
            throw .notSpecified(what: "architecture", flag: "--arch", known: Architecture.allCases.map(\.rawValue))
        }
        let a = try Architecture.named(archName)
        if let bp = blueprint.architecture, try Architecture.named(bp) != a {
            throw .blueprintMismatch(file: file, key: "architecture", blueprint: bp, request: archName)
        }
        try d.check(a)
        let type = try ImageType.named(imageType)
        _ = try ImageDefinition(distro: d, architecture: a, imageType: type)
        return ImageRequest(blueprint: blueprint, distro: d.with(mirror: mirror, securityMirror: securityMirror),
                            architecture: a, imageType: type)
    }

    /// Hex sha256 of the canonical request; every UUID of the image derives from it.
    package var seed: String {
        CanonicalJSON.sha256Hex(.object([
            "blueprint": blueprint.json(),
            "distro": .string(distro.name),
            "architecture": .string(architecture.rawValue),
            "image_type": .string(imageType.rawValue),
        ]))
    }
}
