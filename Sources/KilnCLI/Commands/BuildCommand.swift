import ArgumentParser
import Foundation
import Images
import Manifest
import Protocol
import Scheduler
import Stages

/// Options that name an image: blueprint, distro, architecture, type.
struct ImageOptions: ParsableArguments {
    @Argument(help: "The blueprint (TOML or JSON, osbuild-composer format).")
    var blueprint: String

    @Option(help: "Distribution: debian-12 (bookworm) or debian-13 (trixie).")
    var distro: String?

    @Option(help: "Architecture: x86_64 or aarch64.")
    var arch: String?

    @Option(help: "Image type (kiln image-types lists them): qcow2, raw, minimal-raw, minimal-raw-zst, vmdk, ova, vhd, ami, gce, tar, container.")
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

    @Option(help: "How long one stage may run before it is stopped and the build fails (90s, 30m, 2h); default 1h (on a farm: its --stage-timeout).")
    var stageTimeout: String?

    /// With `--scheduler` the build runs on that farm; without it (the
    /// environment variable is not enough) on an embedded one.
    @OptionGroup var client: ClientOptions

    func run() async throws {
        try await CLI.main {
            let t0 = ContinuousClock.now
            let stageMS = try stageTimeout.map { try CLI.durationMS($0, option: "--stage-timeout") } ?? 0
            let request = try image.request()
            CLI.say("building \(request.imageType.rawValue) for \(request.distro.name) \(request.architecture.rawValue) from \(image.blueprint)")
            let executor = try await stores.executor()
            let generated = try await ManifestGenerator(resolver: image.resolver()).generate(for: request)
            let manifest = generated.manifest
            let label =
                "\((image.blueprint as NSString).lastPathComponent) \(request.distro.name) \(request.architecture.rawValue) \(request.imageType.rawValue)"
            var farm: EmbeddedFarm?
            let remote: SchedulerClient
            var context: ZMQContext?
            if client.scheduler != nil {
                (context, remote) = try await client.connect()
            } else {
                farm = try await EmbeddedFarm.start(executor: executor, logger: executor.logger)
                remote = farm!.client
            }
            do {
                let submitted = try await remote.submit(
                    manifestJSON: [UInt8](manifest.encoded(pretty: false)),
                    exports: [request.imageType.exportPipeline],
                    arch: request.architecture.rawValue, label: label,
                    distro: request.distro.name, imageType: request.imageType.rawValue,
                    notes: generated.notes, stageTimeoutMS: UInt64(stageMS))
                let status = try await remote.wait(submitted.buildID, printer: BuildEventPrinter(verbose: stores.verbose))
                guard status.state == .succeeded else {
                    throw BuildOutcomeError(buildID: submitted.buildID, state: status.state, failure: status.failure)
                }
                if let farm {
                    // Same machine: copy the artifact out of the scheduler's state (sparse, reflinked).
                    try await Export.copyFile(
                        "\(farm.stateDirectory)/scheduler/artifacts/\(status.buildID)/\(request.imageType.outputFile)",
                        to: output)
                } else {
                    _ = try await remote.fetchAll(status, to: output)
                }
                let jobs = status.jobs.filter(\.onAgent)
                let cached = jobs.filter { $0.state == .cached }.count
                let secs = (ContinuousClock.now - t0).seconds
                CLI.say(String(format: "wrote %@ in %.1f s (%d of %d tree job(s) cached)", output, secs, cached, jobs.count))
            } catch {
                await farm?.stop()
                throw error
            }
            await farm?.stop()
            withExtendedLifetime(context) {}
            await stores.prune(executor)
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
            let generated = try await ManifestGenerator(resolver: image.resolver()).generate(for: request)
            for note in generated.notes { CLI.say("kiln: note: \(AgentText.printable(note))") }
            FileHandle.standardOutput.write(generated.manifest.encoded(pretty: true))
            FileHandle.standardOutput.write(Data("\n".utf8))
        }
    }
}

struct DepsolveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "depsolve",
        abstract: "Resolve package names to an exact, pinned package set.")

    @Option(help: "Distribution: debian-12 (bookworm) or debian-13 (trixie).")
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
