import ArgumentParser
import Foundation
import Images
import Manifest
import Scheduler
import Stages

/// Options that name an image: blueprint, distro, architecture, type.
struct ImageOptions: ParsableArguments {
    @Argument(help: "The blueprint (TOML or JSON, osbuild-composer format).")
    var blueprint: String

    @Option(help: "Distribution: debian-12 (bookworm).")
    var distro: String?

    @Option(help: "Architecture: x86_64 or aarch64.")
    var arch: String?

    @Option(help: "Image type: qcow2 or raw.")
    var type: String

    @Option(help: "Debian mirror to use instead of http://deb.debian.org/debian.")
    var mirror: String?

    @Flag(help: "Refresh repository metadata even if the cached copy is recent.")
    var refresh = false

    func request() throws -> ImageRequest {
        let bp = try Blueprint.load(path: blueprint)
        return try ImageRequest.make(blueprint: bp, distro: distro, architecture: arch, imageType: type, mirror: mirror)
    }

    func resolver() -> Depsolver { Depsolver(refresh: refresh) }
}

struct BuildCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "build",
        abstract: "Build an image from a blueprint.")

    @OptionGroup var image: ImageOptions

    @Option(name: .shortAndLong, help: "Where to write the image.")
    var output: String

    @OptionGroup var stores: StoreOptions

    func run() async throws {
        try await CLI.main {
            let t0 = ContinuousClock.now
            let request = try image.request()
            CLI.say("building \(request.imageType.rawValue) for \(request.distro.name) \(request.architecture.rawValue) from \(image.blueprint)")
            let executor = try stores.executor()
            let outcome = try await LocalBuild(executor: executor, resolver: image.resolver()).build(request)
            try await Export.copyFile(outcome.artifact, to: output)
            await stores.prune(executor)
            let secs = (ContinuousClock.now - t0).seconds
            CLI.say(String(format: "wrote %@ in %.1f s (%d stages run, %d pipelines cached)", output, secs,
                           outcome.result.stagesRun.count, outcome.result.cached.count))
        }
    }
}

struct ManifestCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "manifest",
        abstract: "Print the pinned manifest for a blueprint.")

    @OptionGroup var image: ImageOptions

    func run() async throws {
        try await CLI.main {
            let request = try image.request()
            let manifest = try await ManifestGenerator(resolver: image.resolver()).manifest(for: request)
            FileHandle.standardOutput.write(manifest.encoded(pretty: true))
            FileHandle.standardOutput.write(Data("\n".utf8))
        }
    }
}

struct DepsolveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "depsolve",
        abstract: "Resolve package names to an exact, pinned package set.")

    @Option(help: "Distribution: debian-12 (bookworm).")
    var distro: String

    @Option(help: "Architecture: x86_64 or aarch64.")
    var arch: String

    @Flag(help: "Refresh repository metadata even if the cached copy is recent.")
    var refresh = false

    @Flag(help: "Print JSON instead of a table.")
    var json = false

    @Argument(help: "Package names.")
    var packages: [String]

    func run() async throws {
        try await CLI.main {
            let d = try Distro.named(distro)
            let a = try Architecture.named(arch)
            try d.check(a)
            let resolved = try await Depsolver(refresh: refresh).resolve(packages, distro: d, architecture: a)
            if json {
                let enc = JSONEncoder()
                enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
                FileHandle.standardOutput.write(try enc.encode(resolved))
                print()
            } else {
                for p in resolved {
                    print("\(p.name)\t\(p.version)\t\(p.architecture)\t\(p.url)\t\(p.size)\tsha256:\(p.sha256)")
                }
                CLI.say("\(resolved.count) packages, \(String(format: "%.1f MB", Double(resolved.reduce(0) { $0 + $1.size }) / 1e6))")
            }
        }
    }
}
