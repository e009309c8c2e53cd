package import Foundation
package import Images
import Manifest
package import OpenAPIRuntime

/// A compose request in Kiln's terms: one blueprint, the release, and the images.
package struct ComposePlan: Sendable {
    package struct Image: Sendable {
        /// The type as the request named it (composer's or Kiln's name).
        package var requestedType: String
        package var request: ImageRequest
    }

    package var distribution: String
    package var images: [Image]
}

/// Composer's Cloud API request → Kiln's blueprint and image requests. Field
/// names in errors are the request's (`image_requests[1].image_type`,
/// `customizations.users[0]`); a field composer has and Debian does not is
/// refused with the reason, never ignored.
package enum ComposeTranslation {
    /// Composer's image type names and the Kiln type each builds.
    package static let composerTypes: [(name: String, type: ImageType)] = [
        ("guest-image", .qcow2), ("aws", .ami), ("azure", .vhd), ("gcp", .gce), ("vsphere", .vmdk),
        ("vsphere-ova", .ova), ("minimal-raw", .minimalRaw), ("container", .container),
    ]

    /// Composer's types that have no Debian image, with the reason.
    static let refusedTypes: [String: String] = [
        "image-installer": "installer ISOs are not built yet (docs/images.md)",
        "live-installer": "installer ISOs are not built yet (docs/images.md)",
        "wsl": "Kiln makes no WSL image; a tar of the tree (image type tar) is the closest",
        "oci": "Oracle Cloud images are not built; guest-image is a qcow2 that Oracle Cloud imports",
    ]

    /// The Kiln image type for `name`, or why there is none.
    package static func imageType(_ name: String, field: String) throws(APIError) -> ImageType {
        if let t = composerTypes.first(where: { $0.name == name })?.type { return t }
        if let t = ImageType(rawValue: name) { return t }
        let known = composerTypes.map { "\($0.name) (\($0.type.rawValue))" }.joined(separator: ", ")
        if let why = refusedTypes[name] { throw APIError(.unsupported, "\(field): \"\(name)\": \(why); Kiln builds \(known)") }
        let debianless =
            name.hasPrefix("edge-") || name.hasPrefix("iot-") || name.hasSuffix("-rhui")
            ? " (an rpm-ostree or RHEL-specific type, which has no Debian meaning)" : ""
        throw APIError(
            .unsupported,
            "\(field): \"\(name)\" is not an image type Kiln builds\(debianless); use one of \(known), or Kiln's own names "
                + ImageType.allCases.map(\.rawValue).joined(separator: ", "))
    }

    /// Checks the request and makes the blueprint and image requests it asks for.
    package static func plan(
        _ body: Components.Schemas.ComposeRequest, distros: [Distro]
    ) throws -> ComposePlan {
        let name = body.distribution.rawValue
        guard let distro = distros.first(where: { $0.name == name || $0.aliases.contains(name) }) else {
            throw APIError(
                .unsupported, "distribution: \"\(name)\" is not built here; use one of \(distros.map(\.name).joined(separator: ", "))")
        }
        var requests: [(field: String, request: Components.Schemas.ImageRequest)] = []
        switch (body.imageRequest, body.imageRequests) {
        case (nil, nil), (nil, .some([])):
            throw APIError(.badRequest, "image_request: give image_request or a non-empty image_requests")
        case (.some, .some):
            throw APIError(.badRequest, "image_requests: give image_request or image_requests, not both")
        case (.some(let one), nil):
            requests = [("image_request", one)]
        case (nil, .some(let many)):
            guard many.count <= 16 else { throw APIError(.badRequest, "image_requests: at most 16 images per compose") }
            requests = many.enumerated().map { ("image_requests[\($0.offset)]", $0.element) }
        }
        if body.customizations != nil && body.blueprint != nil {
            throw APIError(.badRequest, "blueprint: give customizations or a blueprint, not both")
        }
        let blueprint = try Self.blueprint(body)
        var images: [ComposePlan.Image] = []
        for (field, r) in requests {
            if let repositories = r.repositories, !repositories.isEmpty {
                throw APIError(
                    .unsupported,
                    "\(field).repositories: Kiln builds \(distro.name) from the scheduler's own mirrors (GET /distributions); "
                        + "send an empty list, and put extra repositories in customizations.payload_repositories or custom_repositories")
            }
            if r.uploadTargets?.isEmpty == false || r.uploadOptions != nil {
                throw APIError(.unsupported, "\(field).upload_targets: uploads are not available yet; omit upload_targets and upload_options")
            }
            if let size = r.size, size != 0 {
                throw APIError(
                    .unsupported,
                    "\(field).size: a disk size per image is not taken; set customizations.disk.minsize (a blueprint's [customizations.disk])")
            }
            let type = try imageType(r.imageType, field: "\(field).image_type")
            guard let arch = Architecture(rawValue: r.architecture.rawValue) else {
                throw APIError(.unsupported, "\(field).architecture: \"\(r.architecture.rawValue)\" is not built here; use x86_64 or aarch64")
            }
            guard distro.architectures.contains(arch) else {
                throw APIError(.unsupported, "\(field).architecture: \(distro.name) is not built for \(arch.rawValue)")
            }
            do {
                let request = try ImageRequest.make(
                    blueprint: blueprint, distro: distro.name, architecture: arch.rawValue, imageType: type.rawValue,
                    mirror: distro.mirror, securityMirror: distro.securityMirror)
                images.append(ComposePlan.Image(requestedType: r.imageType, request: request))
            } catch {
                throw APIError(.badRequest, "\(field): \(error)")
            }
        }
        return ComposePlan(distribution: distro.name, images: images)
    }

    /// The blueprint: the request's own (composer's JSON form), or one made from its customizations.
    static func blueprint(_ body: Components.Schemas.ComposeRequest) throws -> Blueprint {
        do {
            if let given = body.blueprint {
                return try Blueprint.parse(json: try json(given), file: "request.blueprint")
            }
            var made: [String: Any] = ["name": "compose"]
            if let c = body.customizations {
                let (top, customizations) = try translate(try object(c))
                made.merge(top) { $1 }
                if !customizations.isEmpty { made["customizations"] = customizations }
            }
            let text = String(decoding: try JSONSerialization.data(withJSONObject: made, options: [.sortedKeys]), as: UTF8.self)
            return try Blueprint.parse(json: text, file: "request.customizations")
        } catch let e as APIError {
            throw e
        } catch {
            throw APIError(.badRequest, "\(error)")
        }
    }

    static func object(_ container: OpenAPIObjectContainer) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(try json(container).utf8)) as? [String: Any] ?? [:]
    }

    static func json(_ container: OpenAPIObjectContainer) throws -> String {
        String(decoding: try JSONEncoder().encode(container), as: UTF8.self)
    }

    /// Composer's Cloud API fields that are a blueprint's under another name (or the same).
    static let renamed: [String: String] = [
        "users": "user", "groups": "group", "hostname": "hostname", "kernel": "kernel", "timezone": "timezone",
        "locale": "locale", "services": "services", "firewall": "firewall", "files": "files",
        "directories": "directories", "disk": "disk", "partitioning_mode": "partitioning_mode",
        "installation_device": "installation_device", "installer": "installer", "cacerts": "cacerts",
    ]

    /// Fields of composer's customizations that only mean something on RHEL or Fedora.
    static let rhelOnly: [String: String] = [
        "subscription": "Red Hat subscriptions", "rhsm": "Red Hat subscription manager",
        "rpm": "RPM signing keys (a repository's gpgkeys sign Debian packages)", "openscap": "OpenSCAP profiles",
        "fdo": "FIDO device onboarding of edge images", "ignition": "Ignition (Fedora CoreOS and edge images)",
        "enabled_modules": "DNF module streams", "containers": "embedded container images",
        "fips": "FIPS mode",
    ]

    /// Cloud API customizations → (top-level blueprint fields, blueprint customizations).
    static func translate(_ c: [String: Any]) throws -> (top: [String: Any], customizations: [String: Any]) {
        var top: [String: Any] = [:], out: [String: Any] = [:]
        var repositories: [Any] = []
        for (key, value) in c.sorted(by: { $0.key < $1.key }) {
            let field = "customizations.\(key)"
            if let name = renamed[key] {
                out[name] = value
                continue
            }
            if let what = rhelOnly[key] {
                throw APIError(.unsupported, "\(field): \(what) have no Debian meaning here; leave \(key) out")
            }
            switch key {
            case "packages":
                guard let names = value as? [Any], names.allSatisfy({ $0 is String }) else {
                    throw APIError(.badRequest, "\(field): a list of package names")
                }
                top["packages"] = names.map { ["name": $0] }
            case "filesystem":
                guard let list = value as? [[String: Any]] else { throw APIError(.badRequest, "\(field): a list of objects") }
                out["filesystem"] = try list.enumerated().map { i, fs -> [String: Any] in
                    var copy = fs
                    if let size = copy.removeValue(forKey: "min_size") { copy["minsize"] = size }
                    for k in copy.keys where k != "mountpoint" && k != "minsize" {
                        throw APIError(.badRequest, "\(field)[\(i)].\(k): unknown field; a filesystem has mountpoint and min_size")
                    }
                    return copy
                }
            case "payload_repositories":
                guard let list = value as? [[String: Any]] else { throw APIError(.badRequest, "\(field): a list of objects") }
                repositories += try list.enumerated().map { try payloadRepository($1, field: "\(field)[\($0)]", index: $0) }
            case "custom_repositories":
                guard let list = value as? [[String: Any]] else { throw APIError(.badRequest, "\(field): a list of objects") }
                repositories += try list.enumerated().map { try customRepository($1, field: "\(field)[\($0)]") }
            default:
                throw APIError(.badRequest, "\(field): unknown field (docs/api.md lists the customizations Kiln takes)")
            }
        }
        if !repositories.isEmpty { out["repositories"] = repositories }
        return (top, out)
    }

    /// `payload_repositories[i]` (composer's Repository: baseurl, gpgkey, check_gpg, …) as a blueprint repository.
    static func payloadRepository(_ r: [String: Any], field: String, index: Int) throws -> [String: Any] {
        var out: [String: Any] = ["id": "payload-\(index)"]
        for (key, value) in r.sorted(by: { $0.key < $1.key }) {
            switch key {
            case "baseurl": out["baseurls"] = [value]
            case "gpgkey": out["gpgkeys"] = [value]
            case "check_gpg": out["gpgcheck"] = value
            case "check_repo_gpg": out["repo_gpgcheck"] = value
            case "ignore_ssl":
                if (value as? Bool) == true {
                    throw APIError(
                        .unsupported, "\(field).ignore_ssl: apt always verifies TLS; use an http:// URL (signatures still protect the packages)")
                }
            case "suites", "components", "priority", "name": out[key] = value
            case "rhsm", "module_hotfixes", "package_sets":
                if let flag = value as? Bool, !flag { continue }
                if key == "package_sets", (value as? [Any])?.isEmpty == true { continue }
                throw APIError(.unsupported, "\(field).\(key): has no Debian meaning; leave it out")
            case "mirrorlist", "metalink":
                throw APIError(.unsupported, "\(field).\(key): a DNF feature apt does not have; give the mirror as baseurl")
            default:
                throw APIError(.badRequest, "\(field).\(key): unknown field")
            }
        }
        guard out["baseurls"] != nil else { throw APIError(.badRequest, "\(field).baseurl: required") }
        return out
    }

    /// `custom_repositories[i]` (composer's CustomRepository) as a blueprint repository.
    static func customRepository(_ r: [String: Any], field: String) throws -> [String: Any] {
        var out: [String: Any] = [:]
        for (key, value) in r.sorted(by: { $0.key < $1.key }) {
            switch key {
            case "baseurl": out["baseurls"] = value
            case "gpgkey": out["gpgkeys"] = value
            case "check_gpg": out["gpgcheck"] = value
            case "check_repo_gpg": out["repo_gpgcheck"] = value
            case "ssl_verify": out["sslverify"] = value
            case "id", "name", "enabled", "priority", "suites", "components", "filename", "mirrorlist", "metalink",
                "module_hotfixes":
                out[key] = value
            default:
                throw APIError(.badRequest, "\(field).\(key): unknown field")
            }
        }
        return out
    }
}
