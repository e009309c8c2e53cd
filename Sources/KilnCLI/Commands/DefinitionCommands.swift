import ArgumentParser
import Foundation
import Images
import Manifest

/// `kiln distros`: the distros Kiln has image definitions for.
struct DistrosCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "distros", abstract: "List the distros Kiln builds.")

    @Flag(help: "Print JSON.")
    var json = false

    func run() async throws {
        let rows = Distro.all.map { d in
            [
                "name": d.name, "aliases": d.aliases.joined(separator: ","), "codename": d.codename,
                "architectures": d.architectures.map(\.rawValue).joined(separator: ","),
            ]
        }
        if json {
            let items: [JSONValue] = Distro.all.map { d in
                .object([
                    "name": .string(d.name), "aliases": .array(d.aliases.map { .string($0) }),
                    "codename": .string(d.codename), "architectures": .array(d.architectures.map { .string($0.rawValue) }),
                ])
            }
            print(CanonicalJSON.encode(.array(items)))
            return
        }
        Listing.table(["NAME", "ALIASES", "ARCHITECTURES"], rows.map { [$0["name"]!, $0["aliases"]!, $0["architectures"]!] })
    }
}

/// `kiln image-types`: the image types, optionally for one distro and architecture.
struct ImageTypesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "image-types", abstract: "List the image types Kiln builds.")

    @Option(help: "Only types this distro has (debian-12, debian-13).")
    var distro: String?

    @Option(help: "Only types defined for this architecture (x86_64, aarch64).")
    var arch: String?

    @Flag(help: "Print JSON.")
    var json = false

    func run() async throws {
        try await CLI.main {
            let distro = try distro.map { name throws(DefinitionError) in try Distro.named(name) }
            let arch = try arch.map { name throws(DefinitionError) in try Architecture.named(name) }
            if let distro, let arch { try distro.check(arch) }
            let arches = (distro?.architectures ?? Architecture.allCases).filter { arch == nil || $0 == arch }
            let types = ImageType.allCases.filter { t in t.architectures.contains { arches.contains($0) } }
            let aliases = Dictionary(grouping: ImageType.aliases.keys.sorted()) { ImageType.aliases[$0]! }
            if json {
                print(
                    CanonicalJSON.encode(
                        .array(
                            types.map { t in
                                .object([
                                    "name": .string(t.rawValue), "aliases": .array((aliases[t] ?? []).map { .string($0) }),
                                    "architectures": .array(t.architectures.filter(arches.contains).map { .string($0.rawValue) }),
                                    "file": .string(t.outputFile), "description": .string(t.summary),
                                ])
                            })))
                return
            }
            Listing.table(
                ["TYPE", "ARCHITECTURES", "FILE", "DESCRIPTION"],
                types.map { t in
                    let names = ([t.rawValue] + (aliases[t] ?? [])).joined(separator: ", ")
                    return [names, t.architectures.filter(arches.contains).map(\.rawValue).joined(separator: ","), t.outputFile, t.summary]
                })
        }
    }
}
