import Foundation
import Manifest
import Testing
@testable import Images

@Suite struct ManifestGeneratorTests {
    static let osStages = [
        "org.kiln.debian.install", "org.kiln.apt.sources", "org.osbuild.hostname", "org.osbuild.locale",
        "org.osbuild.timezone", "org.osbuild.groups", "org.osbuild.users", "org.kiln.ssh.hostkeys", "org.osbuild.systemd", "org.osbuild.cloud-init",
        "org.kiln.files", "org.osbuild.fstab", "org.osbuild.kernel-cmdline", "org.kiln.initramfs", "org.kiln.grub2.config", "org.kiln.grub2.efi",
        "org.osbuild.machine-id",
    ]

    func request(_ file: String = "full.toml", arch: String? = nil, type: String = "qcow2") throws -> ImageRequest {
        let bp = try Blueprint.load(path: Fixtures.path(file))
        var b = bp
        if arch != nil { b.architecture = nil }
        return try ImageRequest.make(blueprint: b, distro: nil, architecture: arch, imageType: type)
    }

    func manifest(_ r: ImageRequest, resolver: FixedPackages = FixedPackages()) async throws -> BuildManifest {
        try await ManifestGenerator(resolver: resolver).manifest(for: r)
    }

    func stage(_ m: BuildManifest, _ pipeline: String, _ type: String) throws -> ManifestStage {
        try #require(m.pipeline(named: pipeline)?.stages.first { $0.type == type }, "no \(type) in \(pipeline)")
    }

    @Test func qcow2PipelinesAndStageOrder() async throws {
        let r = try request()
        let m = try await manifest(r)
        #expect(m.pipelines.map(\.name) == ["os", "image", "qcow2"])
        #expect(m.pipeline(named: "os")?.stages.map(\.type) == Self.osStages)
        #expect(m.pipeline(named: "image")?.stages.map(\.type) == [
            "org.osbuild.truncate", "org.osbuild.sfdisk", "org.kiln.mkfs.fat", "org.kiln.mkfs.ext4", "org.osbuild.grub2.inst",
        ])
        #expect(m.pipeline(named: "qcow2")?.stages.map(\.type) == ["org.osbuild.qemu"])
        #expect(r.imageType.exportPipeline == "qcow2")
        #expect(r.imageType.outputFile == "disk.qcow2")
        let qemu = try stage(m, "qcow2", "org.osbuild.qemu")
        #expect(qemu.options["format"] == ["type": "qcow2", "compat": "1.1"])
        let input = try #require(qemu.inputs["image"])
        #expect(input.references == ["name:image"])
        #expect(input.referenceOptions["name:image"] == ["file": "disk.raw"])
    }

    @Test func rawImageHasNoQcow2Pipeline() async throws {
        let r = try request(type: "raw")
        let m = try await manifest(r)
        #expect(m.pipelines.map(\.name) == ["os", "image"])
        #expect(r.imageType.exportPipeline == "image")
        #expect(r.imageType.outputFile == "disk.raw")
    }

    /// Each type's pipelines, export and what its tree holds.
    @Test(arguments: ImageType.allCases)
    func everyImageTypeHasItsPipelines(_ type: ImageType) async throws {
        for arch in type.architectures {
            let r = try request(arch: arch.rawValue, type: type.rawValue)
            let m = try await manifest(r)
            let names = m.pipelines.map(\.name)
            #expect(names.last == type.exportPipeline, "\(type) \(arch): \(names)")
            #expect(names.contains("image") == type.isDisk)
            let os = try #require(m.pipeline(named: "os")).stages.map(\.type)
            #expect(os.contains("org.kiln.grub2.efi") == type.isDisk, "\(type): \(os)")
            #expect(os.contains("org.kiln.initramfs") == type.isDisk)
            let install = try stage(m, "os", "org.kiln.debian.install")
            #expect(install.inputs["packages"] != nil)
            let cloud = m.pipeline(named: "os")?.stages.first { $0.type == "org.osbuild.cloud-init" }
            #expect(cloud?.options["config"]?["datasource_list"] == type.cloudInitDataSources.map { .array($0.map { .string($0) }) })
            // With cloud-init, a boot that finds no data source turns it off on both architectures.
            let policy = m.pipeline(named: "os")?.stages.first {
                $0.type == "org.kiln.files" && $0.options["files"]?.arrayValue?.first?["path"]?.stringValue == "/etc/cloud/ds-identify.cfg"
            }
            #expect((policy != nil) == (type.cloudInitDataSources != nil), "\(type) \(arch)")
            if let data = policy?.options["files"]?.arrayValue?.first?["data"]?.stringValue {
                #expect(String(decoding: Data(base64Encoded: data) ?? Data(), as: UTF8.self)
                        == "policy: search,found=all,maybe=all,notfound=disabled\n")
            }
            let definition = try ImageDefinition(distro: r.distro, architecture: arch, imageType: type)
            #expect(definition.packages.contains("cloud-init") == (type.cloudInitDataSources != nil))
            #expect(definition.packages.contains { $0.hasPrefix("linux-image-") } == type.isDisk)
            // The export pipeline's last stage writes the image file.
            let last = try #require(m.pipeline(named: type.exportPipeline)?.stages.last)
            if type != .raw && type != .ami {
                #expect(last.options["filename"]?.stringValue == type.outputFile, "\(type): \(last.type)")
            }
        }
    }

    /// A blueprint that writes its own ds-identify policy keeps it: Kiln adds none.
    @Test func blueprintsOwnDsIdentifyPolicyWins() async throws {
        var r = try request(arch: "aarch64")
        r.blueprint.customizations.files.append(.init(path: "/etc/cloud/ds-identify.cfg", data: "policy: enabled\n"))
        try ManifestGenerator.validate(r)
        let m = try await manifest(r)
        let writes = (m.pipeline(named: "os")?.stages ?? []).filter { $0.type == "org.kiln.files" }
            .flatMap { $0.options["files"]?.arrayValue ?? [] }
            .filter { $0["path"]?.stringValue == "/etc/cloud/ds-identify.cfg" }
        #expect(writes.count == 1)
        #expect(writes.first?["data"]?.stringValue == Data("policy: enabled\n".utf8).base64EncodedString())
    }

    @Test func ovaIsX86Only() throws {
        let e = #expect(throws: DefinitionError.self) { try request(arch: "aarch64", type: "ova") }
        #expect(e?.description == "image type ova is not defined for aarch64; it exists for: x86_64")
    }

    @Test func sameRequestSameManifest() async throws {
        let a = try await manifest(try request())
        let b = try await manifest(try request())
        #expect(a.encoded(pretty: false) == b.encoded(pretty: false))
        #expect(try ContentIDs(a).pipelines == ContentIDs(b).pipelines)
        // A different blueprint gives different UUIDs.
        var other = try request()
        other.blueprint.customizations.hostname = "other"
        let c = try await manifest(other)
        #expect(try stage(a, "image", "org.kiln.mkfs.ext4").options["uuid"] != stage(c, "image", "org.kiln.mkfs.ext4").options["uuid"])
    }

    @Test func manifestRoundTripsThroughTheDecoder() async throws {
        let m = try await manifest(try request())
        let decoded = try BuildManifest.decode(m.encoded(pretty: true))
        #expect(CanonicalJSON.encode(decoded.json()) == CanonicalJSON.encode(m.json()))
    }

    @Test(arguments: [Architecture.x86_64, .aarch64])
    func uuidsAgreeBetweenFstabBootloaderAndFilesystems(_ arch: Architecture) async throws {
        let m = try await manifest(try request(arch: arch.rawValue))
        let root = try #require(stage(m, "image", "org.kiln.mkfs.ext4").options["uuid"]?.stringValue)
        let volid = try #require(stage(m, "image", "org.kiln.mkfs.fat").options["volid"]?.stringValue)
        #expect(volid.count == 8 && volid.allSatisfy(\.isHexDigit))
        #expect(root.count == 36)
        let fstab = try #require(stage(m, "os", "org.osbuild.fstab").options["filesystems"]?.arrayValue)
        #expect(fstab[0] == ["uuid": .string(root), "vfs_type": "ext4", "path": "/", "options": "errors=remount-ro", "freq": 0, "passno": 1])
        #expect(fstab[1] == ["uuid": .string(DeterministicIDs.fatUUID(volid)), "vfs_type": "vfat", "path": "/boot/efi",
                             "options": "umask=0077", "freq": 0, "passno": 2])
        for type in ["org.osbuild.kernel-cmdline", "org.kiln.grub2.config", "org.kiln.grub2.efi"] {
            #expect(try stage(m, "os", type).options["root_fs_uuid"]?.stringValue == root, "\(type)")
        }
        let efi = try stage(m, "os", "org.kiln.grub2.efi")
        #expect(efi.options["target"]?.stringValue == arch.grubEFITarget)
        #expect(efi.options["filename"]?.stringValue == "/boot/efi/EFI/BOOT/\(arch.efiBinary)")
        let grub = try stage(m, "os", "org.kiln.grub2.config")
        #expect(grub.options["uefi_target"]?.stringValue == arch.grubEFITarget)
        #expect(grub.options["bios_target"]?.stringValue == (arch == .x86_64 ? "i386-pc" : nil))
        let opts = try #require(stage(m, "os", "org.osbuild.kernel-cmdline").options["kernel_opts"]?.stringValue)
        #expect(opts.contains(arch == .x86_64 ? "console=tty0 console=ttyS0,115200" : "console=ttyAMA0,115200"))
    }

    @Test(arguments: [Architecture.x86_64, .aarch64])
    func diskLayoutFollowsDebianCloudImages(_ arch: Architecture) async throws {
        let m = try await manifest(try request(arch: arch.rawValue))
        let truncate = try stage(m, "image", "org.osbuild.truncate")
        #expect(truncate.options["size"] == .int(3 << 30))
        let sfdisk = try stage(m, "image", "org.osbuild.sfdisk")
        #expect(sfdisk.options["label"] == "gpt")
        let parts = try #require(sfdisk.options["partitions"]?.arrayValue)
        let starts = parts.compactMap { $0["start"]?.int64Value }
        let types = parts.compactMap { $0["type"]?.stringValue }
        if arch == .x86_64 {
            #expect(starts == [2048, 8192, 262_144])
            #expect(parts.compactMap { $0["size"]?.int64Value }.prefix(2) == [6144, 253_952])
            #expect(types == [DiskLayout.biosBootType, DiskLayout.espType, arch.rootPartitionType])
        } else {
            #expect(starts == [2048, 262_144])
            #expect(parts.first?["size"]?.int64Value == 260_096)
            #expect(types == [DiskLayout.espType, arch.rootPartitionType])
        }
        // Root fills the disk up to the backup GPT, on a MiB boundary.
        let root = try #require(parts.last)
        let end = try #require(root["start"]?.int64Value) + root["size"]!.int64Value!
        #expect(end <= (3 << 30) / 512 - 33 && end % 2048 == 0 && (3 << 30) / 512 - end < 2048 + 33)
        // Partition UUIDs are distinct and the filesystems are written into their partitions.
        let uuids = parts.compactMap { $0["uuid"]?.stringValue } + [sfdisk.options["uuid"]!.stringValue!]
        #expect(Set(uuids).count == uuids.count)
        for (type, index) in [("org.kiln.mkfs.ext4", parts.count - 1), ("org.kiln.mkfs.fat", parts.count - 2)] {
            let dev = try #require(stage(m, "image", type).devices["device"])
            #expect(dev.type == "org.osbuild.loopback")
            #expect(dev.options["filename"] == "disk.raw")
            #expect(dev.options["start"] == parts[index]["start"])
            #expect(dev.options["size"] == parts[index]["size"])
            #expect(try stage(m, "image", type).inputs["tree"] == .tree("os"))
        }
        #expect(try stage(m, "image", "org.kiln.mkfs.fat").options["source"] == "/boot/efi")
        #expect(try stage(m, "image", "org.kiln.mkfs.ext4").options["source"] == "/")
        let inst = m.pipeline(named: "image")?.stages.first { $0.type == "org.osbuild.grub2.inst" }
        if arch == .x86_64 {
            let inst = try #require(inst)
            #expect(inst.options["location"] == 2048)
            #expect(inst.options["prefix"] == ["type": "partition", "partlabel": "gpt", "number": 2, "path": "/boot/grub"])
            #expect(inst.options["core"] == ["type": "mkimage", "partlabel": "gpt", "filesystem": "ext4"])
        } else {
            #expect(inst == nil)
        }
    }

    @Test func packagesBecomeInputsAndSources() async throws {
        let r = try request()
        let resolver = FixedPackages()
        let packages = try await resolver.resolve(ManifestGenerator.packageNames(r, try ImageDefinition(
            distro: r.distro, architecture: r.architecture, imageType: r.imageType)), distro: r.distro, architecture: r.architecture)
        let m = try await manifest(r)
        let install = try stage(m, "os", "org.kiln.debian.install")
        #expect(install.options["architecture"] == "amd64")
        #expect(install.options["release"] == "bookworm")
        #expect(install.inputs["packages"] == .files(packages.map(\.checksum)))
        let items = try #require(m.sources["org.osbuild.curl"]?.items)
        #expect(items.count == packages.count)
        for p in packages { #expect(items[p.checksum]?.url == p.url) }
        let sources = try stage(m, "os", "org.kiln.apt.sources").options["sources"]?.arrayValue
        #expect(sources?.first?["suites"] == ["bookworm", "bookworm-updates"])
        #expect(sources?.last?["uris"] == ["http://deb.debian.org/debian-security"])
        #expect(sources?.last?["signed_by"] == "/usr/share/keyrings/debian-archive-keyring.gpg")
    }

    @Test func basePackageSetPerArchitecture() throws {
        for arch in Architecture.allCases {
            let def = try ImageDefinition(distro: .debian12, architecture: arch, imageType: .qcow2)
            #expect(def.basePackages.contains("linux-image-\(arch.debian)"))
            #expect(def.basePackages.contains(arch == .x86_64 ? "grub-pc-bin" : "grub-efi-arm64-bin"))
            #expect(!def.basePackages.contains("openssh-server"))
        }
    }

    @Test func usersGroupsAndServices() async throws {
        let m = try await manifest(try request())
        #expect(try stage(m, "os", "org.osbuild.hostname").options == ["hostname": "full-vm"])
        #expect(try stage(m, "os", "org.osbuild.timezone").options == ["zone": "Europe/Berlin"])
        #expect(try stage(m, "os", "org.osbuild.locale").options == ["language": "C.UTF-8"])
        #expect(try stage(m, "os", "org.osbuild.groups").options == ["groups": ["developers": ["gid": 1300]]])
        let users = try #require(stage(m, "os", "org.osbuild.users").options["users"]?.objectValue)
        #expect(Set(users.keys) == ["alice", "bob", "root"])
        #expect(users["alice"]?["uid"] == 1200)
        #expect(users["alice"]?["gid"] == 1300)
        #expect(users["alice"]?["groups"] == ["sudo", "developers"])
        #expect(users["alice"]?["home"] == "/home/alice")
        #expect(users["alice"]?["shell"] == "/bin/bash")
        #expect(users["alice"]?["description"] == "Alice Admin")
        #expect(users["alice"]?["password"]?.stringValue?.hasPrefix("$6$") == true)
        #expect(users["bob"] == ["key": "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQKiln bob@desk"])
        #expect(users["root"] == ["key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIRoot root@admin"])
        let systemd = try stage(m, "os", "org.osbuild.systemd").options
        let enabled = try #require(systemd["enabled_services"]?.arrayValue).compactMap { $0.stringValue }
        #expect(enabled.contains("ssh.service"))
        #expect(enabled.contains("systemd-networkd.service"))
        #expect(enabled.contains("systemd-timesyncd.service"))
        #expect(Set(enabled).count == enabled.count)
        #expect(systemd["disabled_services"] == ["apt-daily.timer"])
        #expect(systemd["masked_services"] == ["getty@tty1.service"])
        #expect(systemd["default_target"] == "multi-user.target")
        #expect(try stage(m, "os", "org.osbuild.machine-id").options == ["first-boot": "yes"])
    }

    /// Every VM type has an SSH server (Debian's cloud images do); a tree or container has one only when asked.
    @Test func sshServerInEveryVMTypeOnly() async throws {
        let bp = try Blueprint.parse(toml: "name = \"tiny\"\n")
        for type in ImageType.allCases {
            let r = try ImageRequest.make(blueprint: bp, distro: "bookworm", architecture: "x86_64", imageType: type.rawValue)
            let names = ManifestGenerator.packageNames(r, try ImageDefinition(distro: r.distro, architecture: r.architecture, imageType: type))
            #expect(names.contains("openssh-server") == type.isDisk, "\(type)")
        }
        let withKey = try Blueprint.parse(toml: "name = \"c\"\n[[packages]]\nname = \"openssh-server\"\n")
        let asked = try ImageRequest.make(blueprint: withKey, distro: "bookworm", architecture: "x86_64", imageType: "container")
        #expect(ManifestGenerator.packageNames(asked, try ImageDefinition(distro: asked.distro, architecture: asked.architecture,
                                                                             imageType: .container)).contains("openssh-server"))
        let raw = try await manifest(try ImageRequest.make(blueprint: bp, distro: "bookworm", architecture: "arm64", imageType: "raw"))
        let rawEnabled = try stage(raw, "os", "org.osbuild.systemd").options["enabled_services"]?.arrayValue ?? []
        #expect(rawEnabled.contains("ssh.service") && rawEnabled.contains("kiln-ssh-keygen.service"))

        let r = try ImageRequest.make(blueprint: bp, distro: "bookworm", architecture: "arm64", imageType: "tar")
        let m = try await manifest(r)
        let enabled = try stage(m, "os", "org.osbuild.systemd").options["enabled_services"]?.arrayValue ?? []
        #expect(!enabled.contains("ssh.service"))
        #expect(m.pipeline(named: "os")?.stages.contains { $0.type == "org.osbuild.users" } == false)
        #expect(try stage(m, "os", "org.osbuild.hostname").options == ["hostname": "debian"])
        #expect(try stage(m, "os", "org.osbuild.timezone").options == ["zone": "UTC"])
    }

    @Test func unknownGroupIsRejectedWithItsLine() async throws {
        let text = "name = \"x\"\n[[customizations.user]]\nname = \"a\"\ngroups = [\"wheel\"]\n"
        let bp = try Blueprint.parse(toml: text, file: "bp.toml")
        let r = try ImageRequest.make(blueprint: bp, distro: "debian-12", architecture: "x86_64", imageType: "qcow2")
        let e = await #expect(throws: BlueprintError.self) { _ = try await manifest(r) }
        #expect(e?.description == "bp.toml:4: customizations.user[0].groups[0]: group \"wheel\" does not exist in debian-12; add it under [[customizations.group]] or use \"sudo\"")
    }

    @Test func sshKeyForUndefinedUserIsRejected() async throws {
        let text = "name = \"x\"\n[[customizations.sshkey]]\nuser = \"carol\"\nkey = \"ssh-ed25519 AAAA c@h\"\n"
        let r = try ImageRequest.make(blueprint: try Blueprint.parse(toml: text), distro: "debian-12", architecture: "x86_64", imageType: "raw")
        let e = await #expect(throws: BlueprintError.self) { _ = try await manifest(r) }
        #expect(e?.keyPath == "customizations.sshkey[0].user")
    }

    @Test func lookupsNameTheChoices() throws {
        #expect(try Distro.named("bookworm") == .debian12)
        #expect(#expect(throws: DefinitionError.self) { try Distro.named("debian-9") }?.description.contains("bookworm") == true)
        #expect(try ImageType.named("guest-image") == .qcow2)
        let unknown = #expect(throws: DefinitionError.self) { try ImageType.named("iso") }
        #expect(unknown?.description.hasPrefix("unknown image type \"iso\"; known image types: qcow2, raw, minimal-raw,") == true)
        #expect(throws: DefinitionError.unknownArchitecture(name: "ppc64le", known: ["x86_64", "aarch64"])) { try Architecture.named("ppc64le") }
        let bp = try Blueprint.load(path: Fixtures.path("full.toml"))  // says x86_64 and debian-12
        #expect(throws: DefinitionError.self) { try ImageRequest.make(blueprint: bp, distro: nil, architecture: "aarch64", imageType: "raw") }
        let tiny = try Blueprint.parse(toml: "name = \"t\"\n")
        let e = #expect(throws: DefinitionError.self) { try ImageRequest.make(blueprint: tiny, distro: nil, architecture: "x86_64", imageType: "raw") }
        #expect(e?.description.contains("--distro") == true)
        let mirrored = try ImageRequest.make(blueprint: tiny, distro: "debian-12", architecture: "x86_64", imageType: "raw",
                                             mirror: "http://mirror.example/debian/")
        #expect(mirrored.distro.mirror == "http://mirror.example/debian")
    }

    /// Every stage type and top-level option key the generator emits, for the
    /// test blueprint and the kitchen sink, is in docs/stages.md.
    @Test(arguments: [Architecture.x86_64, .aarch64])
    func emitsOnlyDocumentedStagesAndOptions(_ arch: Architecture) async throws {
        let documented = try Fixtures.documentedStageOptions()
        let kitchenSink = try Blueprint.load(path: Fixtures.repository.appendingPathComponent("examples/blueprints/kitchen-sink.toml").path)
        var requests = try ImageType.allCases.filter { $0.architectures.contains(arch) }
            .map { try request(arch: arch.rawValue, type: $0.rawValue) }
        requests.append(try ImageRequest.make(blueprint: kitchenSink, distro: "debian-12", architecture: arch.rawValue, imageType: "qcow2"))
        for r in requests {
            let m = try await manifest(r, resolver: FixedPackages(extra: ["openssh-server"]))
            for p in m.pipelines {
                for s in p.stages {
                    let keys = try #require(documented[s.type], "\(s.type) is not in docs/stages.md")
                    for k in s.options.keys { #expect(keys.contains(k), "\(s.type) option \(k) is not documented") }
                }
            }
        }
    }
}
