import Manifest

/// A distro, architecture or image type that Kiln does not know, or a request
/// that contradicts its blueprint.
package enum DefinitionError: Error, Sendable, Equatable, CustomStringConvertible {
    /// No distro of that name or alias.
    case unknownDistro(name: String, known: [String])
    /// No architecture of that name.
    case unknownArchitecture(name: String, known: [String])
    /// No image type of that name.
    case unknownImageType(name: String, known: [String])
    /// The distro exists but not for this architecture.
    case unsupportedArchitecture(distro: String, architecture: String, supported: [String])
    /// The image type is not defined for this architecture.
    case unsupportedImageType(type: String, architecture: String, supported: [String])
    /// The blueprint names a different distro or architecture than the request.
    case blueprintMismatch(file: String, key: String, blueprint: String, request: String)
    /// Neither the request nor the blueprint names a distro or architecture.
    case notSpecified(what: String, flag: String, known: [String])

    package var description: String {
        switch self {
        case .unknownDistro(let name, let known):
            "unknown distro \"\(name)\"; known distros: \(known.joined(separator: ", "))"
        case .unknownArchitecture(let name, let known):
            "unknown architecture \"\(name)\"; known architectures: \(known.joined(separator: ", "))"
        case .unknownImageType(let name, let known):
            "unknown image type \"\(name)\"; known image types: \(known.joined(separator: ", "))"
        case .unsupportedArchitecture(let distro, let arch, let supported):
            "\(distro) has no image definitions for \(arch); use one of: \(supported.joined(separator: ", "))"
        case .unsupportedImageType(let type, let arch, let supported):
            "image type \(type) is not defined for \(arch); it exists for: \(supported.joined(separator: ", "))"
        case .blueprintMismatch(let file, let key, let blueprint, let request):
            "\(file): \(key): the blueprint asks for \"\(blueprint)\" but the request is for \"\(request)\"; change one of them or remove \(key) from the blueprint"
        case .notSpecified(let what, let flag, let known):
            "no \(what) given; pass \(flag) (one of: \(known.joined(separator: ", "))) or set it in the blueprint"
        }
    }
}

extension Architecture {
    /// The architecture named `name` (`x86_64`, `aarch64`, `amd64`, `arm64`).
    package static func named(_ name: String) throws(DefinitionError) -> Architecture {
        guard let a = Architecture(name: name) else {
            throw .unknownArchitecture(name: name, known: Architecture.allCases.map(\.rawValue))
        }
        return a
    }
}
