import Manifest

/// `[[customizations.filesystem]]`, `[customizations.disk]` and `partitioning_mode`:
/// everything about the disk the parser can check without the image type.
/// (Whether the layout fits the image type's disk is checked when the
/// manifest is generated.)
extension BlueprintReader {
    /// Volume group name when `[[customizations.disk.partitions]]` with type = "lvm" has none.
    static let defaultVolumeGroup = "rootvg"

    func filesystems(_ v: JSONValue?, _ path: String) throws(BlueprintError) -> [Blueprint.Filesystem] {
        var out: [Blueprint.Filesystem] = []
        var seen: [String: String] = [:]
        for (p, o) in try tables(v, path) {
            let mp = try required(o, "mountpoint", p, fix: "give the mountpoint, e.g. mountpoint = \"/var\"")
            try mountpoint(mp, "\(p).mountpoint", policy: BlueprintRules.filesystemMountpoints)
            if let first = seen[mp] {
                throw origin.error("\(p).mountpoint", .invalid(reason: "mountpoint \"\(mp)\" is already given at \(first); list each mountpoint once"))
            }
            seen[mp] = p
            let minSize: Int64
            switch (o["minsize"], o["size"]) {
            case (nil, nil):
                throw origin.error("\(p).minsize", .missing(fix: "give the filesystem's minimum size, e.g. minsize = \"2 GiB\""))
            case (let m?, nil): minSize = try size(m, "\(p).minsize")
            case (nil, let s?): minSize = try size(s, "\(p).size")
            case (_?, _?):
                throw origin.error("\(p).size", .invalid(reason: "size is the old name of minsize; give only minsize"))
            }
            out.append(.init(mountpoint: mp, minSize: minSize))
        }
        return out
    }

    func partitioningMode(_ v: JSONValue, _ path: String) throws(BlueprintError) -> Blueprint.PartitioningMode {
        let s = try string(v, path)
        if let mode = Blueprint.PartitioningMode(rawValue: s) { return mode }
        if s == "btrfs" {
            throw origin.error(path, .unsupported(fix: "btrfs subvolumes are not implemented (the Debian kernel could mount them, but Kiln creates only ext4, xfs, vfat and swap); use \"raw\", \"lvm\" or \"auto-lvm\""))
        }
        let all = Blueprint.PartitioningMode.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", ")
        throw origin.error(path, .invalid(reason: "\"\(s)\" is not a partitioning mode; use one of \(all)"))
    }

    /// A canonical mountpoint that `policy` allows.
    func mountpoint(_ mp: String, _ path: String, policy: BlueprintRules.PathPolicy) throws(BlueprintError) {
        if let reason = BlueprintRules.canonicalPathProblem(mp, example: "/var") {
            throw origin.error(path, .invalid(reason: reason))
        }
        if let why = policy.problem(mp) {
            let fix = why.contains("use ") || why.contains("describe ") ? "" : "; choose another mountpoint, e.g. /data or /var/lib/myapp"
            throw origin.error(path, .invalid(reason: "\"\(mp)\" cannot be a mountpoint: \(why)\(fix)"))
        }
    }

    func disk(_ v: JSONValue, _ path: String) throws(BlueprintError) -> Blueprint.Disk {
        let o = try table(v, path)
        var d = Blueprint.Disk()
        if let t = o["type"] {
            let type = try string(t, "\(path).type")
            guard type == "gpt" || type == "dos" else {
                throw origin.error("\(path).type", .invalid(reason: "\"\(type)\" is not a partition table type; use \"gpt\" or \"dos\""))
            }
            d.type = type
        }
        if let m = o["minsize"] { d.minSize = try size(m, "\(path).minsize") }
        let pp = "\(path).partitions"
        guard let partitions = o["partitions"] else {
            throw origin.error(pp, .missing(fix: "add [[customizations.disk.partitions]] entries, one of them (or a logical volume) mounted at \"/\""))
        }
        let entries = try tables(partitions, pp)
        if d.type == "dos", entries.count > 4 {
            throw origin.error("\(pp)[4]", .invalid(reason: "a \"dos\" partition table holds at most 4 partitions; use type = \"gpt\" or fewer partitions"))
        }
        var mountpoints: [String: String] = [:]
        var volumeGroup: String? = nil
        for (p, po) in entries {
            let partType = try optionalString(po["part_type"], "\(p).part_type")
            if let partType, let reason = BlueprintRules.partTypeProblem(partType, table: d.type) {
                throw origin.error("\(p).part_type", .invalid(reason: reason))
            }
            switch try optionalString(po["type"], "\(p).type") ?? "plain" {
            case "plain":
                for key in ["name", "logical_volumes"] where po[key] != nil {
                    throw origin.error("\(p).\(key)", .invalid(reason: "belongs to partitions with type = \"lvm\"; remove it or set type = \"lvm\""))
                }
                var fs = try filesystemSpec(po, p, onLVM: false, mountpoints: &mountpoints)
                fs.partType = partType
                d.partitions.append(.plain(fs))
            case "lvm":
                for key in ["mountpoint", "label", "fs_type"] where po[key] != nil {
                    throw origin.error("\(p).\(key)", .invalid(reason: "a volume group has no \(key) of its own; set it on its [[customizations.disk.partitions.logical_volumes]]"))
                }
                if let first = volumeGroup {
                    throw origin.error("\(p).type", .invalid(reason: "only one LVM volume group per disk is supported (as in osbuild) and \(first) is one; put these logical volumes there"))
                }
                volumeGroup = p
                var vg = try volumeGroupSpec(po, p, mountpoints: &mountpoints)
                vg.partType = partType
                d.partitions.append(.lvm(vg))
            case "btrfs":
                throw origin.error("\(p).type", .unsupported(fix: "btrfs volumes are not implemented: the Debian kernel can mount btrfs, but Kiln creates only ext4, xfs, vfat and swap and no subvolumes; use type = \"plain\" or type = \"lvm\""))
            case let other:
                throw origin.error("\(p).type", .invalid(reason: "\"\(other)\" is not a partition type; use \"plain\" (a filesystem or swap) or \"lvm\" (a volume group)"))
            }
        }
        if mountpoints["/"] == nil {
            throw origin.error(pp, .missing(fix: "no partition or logical volume is mounted at \"/\"; give one mountpoint = \"/\" (Kiln does not add a root filesystem to a [customizations.disk] layout)"))
        }
        return d
    }

    func volumeGroupSpec(_ o: [String: JSONValue], _ p: String, mountpoints: inout [String: String]) throws(BlueprintError) -> Blueprint.VolumeGroup {
        let name = try optionalString(o["name"], "\(p).name") ?? Self.defaultVolumeGroup
        if let reason = BlueprintRules.lvmNameProblem(name, kind: "volume group") {
            throw origin.error("\(p).name", .invalid(reason: reason))
        }
        let minSize = try o["minsize"].map { (m: JSONValue) throws(BlueprintError) in try size(m, "\(p).minsize") } ?? 0
        let lp = "\(p).logical_volumes"
        let entries = try tables(o["logical_volumes"], lp)
        if entries.isEmpty {
            throw origin.error(lp, .missing(fix: "add at least one [[customizations.disk.partitions.logical_volumes]] to the volume group"))
        }
        // Names given first, so that generated ones (rootlv, homelv, …) avoid them.
        var names: [String: String] = [:]
        var given: [String?] = []
        for (vp, vo) in entries {
            let name = try optionalString(vo["name"], "\(vp).name")
            if let name {
                if let reason = BlueprintRules.lvmNameProblem(name, kind: "logical volume") {
                    throw origin.error("\(vp).name", .invalid(reason: reason))
                }
                try claim(name, vp, in: &names)
            }
            given.append(name)
        }
        var volumes: [Blueprint.FilesystemSpec] = []
        for ((vp, vo), name) in zip(entries, given) {
            var fs = try filesystemSpec(vo, vp, onLVM: true, mountpoints: &mountpoints)
            if let name {
                fs.name = name
            } else {
                let stem = BlueprintRules.defaultLogicalVolumeName(mountpoint: fs.mountpoint)
                var candidate = stem
                var n = 1
                while names[candidate] != nil { n += 1; candidate = "\(stem)\(n)" }
                if let reason = BlueprintRules.lvmNameProblem(candidate, kind: "logical volume") {
                    throw origin.error(vp, .invalid(reason: "the name Kiln would give this logical volume, \(reason.prefix(while: { $0 != ";" })); give it a name = \"…\""))
                }
                names[candidate] = vp
                fs.name = candidate
            }
            volumes.append(fs)
        }
        return .init(name: name, minSize: minSize, logicalVolumes: volumes)
    }

    /// Directories vfat cannot hold: it has no owners, permissions or symlinks.
    static let unixOnly = ["/", "/boot", "/usr", "/var", "/home", "/tmp", "/root"]

    /// The filesystem of a plain partition or a logical volume.
    func filesystemSpec(_ o: [String: JSONValue], _ p: String, onLVM: Bool,
                        mountpoints: inout [String: String]) throws(BlueprintError) -> Blueprint.FilesystemSpec {
        let fsType = try required(o, "fs_type", p, fix: "give the filesystem: fs_type = \"ext4\", \"xfs\", \"vfat\" or \"swap\"")
        switch fsType {
        case _ where BlueprintRules.filesystemTypes.contains(fsType): break
        case "btrfs":
            throw origin.error("\(p).fs_type", .unsupported(fix: "Kiln creates only ext4, xfs, vfat and swap (the Debian kernel could mount btrfs, but subvolumes are not implemented); use ext4 or xfs"))
        case "none":
            throw origin.error("\(p).fs_type", .unsupported(fix: "partitions without a filesystem are not implemented (the image type adds the BIOS boot partition itself); remove this partition"))
        default:
            throw origin.error("\(p).fs_type", .invalid(reason: "\"\(fsType)\" is not a filesystem Kiln creates; use \"ext4\", \"xfs\", \"vfat\" or \"swap\""))
        }
        guard let m = o["minsize"] else {
            throw origin.error("\(p).minsize", .missing(fix: "give its minimum size, e.g. minsize = \"10 GiB\""))
        }
        let minSize = try size(m, "\(p).minsize")
        let label = try optionalString(o["label"], "\(p).label")
        if let label, let reason = BlueprintRules.labelProblem(label, fsType: fsType) {
            throw origin.error("\(p).label", .invalid(reason: reason))
        }
        var mountpoint = try optionalString(o["mountpoint"], "\(p).mountpoint")
        if mountpoint == "" { mountpoint = nil }
        if fsType == "swap" {
            if let mp = mountpoint {
                throw origin.error("\(p).mountpoint", .invalid(reason: "swap is not mounted; remove mountpoint = \"\(mp)\", or give this \(onLVM ? "logical volume" : "partition") a filesystem with fs_type"))
            }
        } else {
            guard let mp = mountpoint else {
                throw origin.error("\(p).mountpoint", .missing(fix: "give where the \(fsType) filesystem is mounted, e.g. mountpoint = \"/data\" (only swap has no mountpoint)"))
            }
            try self.mountpoint(mp, "\(p).mountpoint", policy: BlueprintRules.diskMountpoints)
            if onLVM && (mp == "/boot" || mp == "/boot/efi") {
                throw origin.error("\(p).mountpoint", .invalid(reason: "\(mp) must be on a plain partition: the firmware and boot loader read it before LVM is up; move it to a [[customizations.disk.partitions]] entry with type = \"plain\""))
            }
            if mp == "/boot", fsType != "ext4" && fsType != "xfs" {
                throw origin.error("\(p).fs_type", .invalid(reason: "/boot must be ext4 or xfs, not \(fsType)"))
            }
            if mp == "/boot/efi", fsType != "vfat" {
                throw origin.error("\(p).fs_type", .invalid(reason: "/boot/efi is the EFI system partition, which the firmware reads: it must be vfat, not \(fsType)"))
            }
            if fsType == "vfat", mp != "/boot/efi", Self.unixOnly.contains(where: { mp == $0 || ($0 != "/" && mp.hasPrefix($0 + "/")) }) {
                throw origin.error("\(p).fs_type", .invalid(reason: "vfat has no owners, permissions or symlinks, so it cannot hold \(mp); use ext4 or xfs (vfat is for /boot/efi and data mountpoints such as /data)"))
            }
            if let first = mountpoints[mp] {
                throw origin.error("\(p).mountpoint", .invalid(reason: "mountpoint \"\(mp)\" is already used by \(first); give each filesystem its own mountpoint"))
            }
            mountpoints[mp] = p
        }
        return .init(mountpoint: mountpoint, fsType: fsType, label: label, minSize: minSize)
    }
}
