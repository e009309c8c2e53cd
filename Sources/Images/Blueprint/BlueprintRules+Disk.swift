import Foundation

/// Sizes, filesystem labels and LVM names.
extension BlueprintRules {
    /// Unit → bytes. osbuild's units (kB, MB, GB, TB decimal; KiB, MiB, GiB, TiB binary) plus the
    /// one-letter binary suffixes that lvcreate, truncate and parted take (`1G` is 1 GiB).
    static let sizeUnits: [String: Int64] = [
        "": 1, "B": 1,
        "kB": 1000, "KB": 1000, "MB": 1_000_000, "GB": 1_000_000_000, "TB": 1_000_000_000_000,
        "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40,
        "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40,
    ]

    static let sizeFix = "give bytes as an integer (2147483648) or a string with a unit such as \"2 GiB\", \"500 MiB\", \"1.5 GB\" or \"1G\" (units: B, kB, MB, GB, TB, KiB, MiB, GiB, TiB, and K, M, G, T for KiB…TiB)"

    /// A size in bytes from `"2 GiB"`, `"500MiB"`, `"1G"`, `"1.5 GiB"` or `"2147483648"`; the reason otherwise.
    package static func parseSize(_ text: String) -> Result<Int64, SizeProblem> {
        let s = text.trimmingCharacters(in: .whitespaces)
        let number = s.prefix(while: { $0.isASCII && ($0.isNumber || $0 == ".") })
        let unit = s.dropFirst(number.count).trimmingCharacters(in: .whitespaces)
        guard !number.isEmpty, number.first != ".", number.last != ".", number.filter({ $0 == "." }).count <= 1,
              let multiple = sizeUnits[unit]
        else { return .failure(SizeProblem("\"\(text)\" is not a size; \(sizeFix)")) }
        let parts = number.split(separator: ".", omittingEmptySubsequences: false)
        // Exact arithmetic: whole * multiple + fraction * multiple / 10^digits must be whole bytes.
        guard let whole = Int64(parts[0]) else { return .failure(SizeProblem("\"\(text)\" is too large")) }
        var bytes = whole.multipliedReportingOverflow(by: multiple)
        if bytes.overflow { return .failure(SizeProblem("\"\(text)\" is too large")) }
        if parts.count == 2 {
            let digits = parts[1]
            guard digits.count <= 12, let fraction = Int64(digits) else {
                return .failure(SizeProblem("\"\(text)\" has too many decimals"))
            }
            var scale: Int64 = 1
            for _ in 0..<digits.count { scale *= 10 }
            let scaled = fraction.multipliedReportingOverflow(by: multiple)
            guard !scaled.overflow, scaled.partialValue % scale == 0 else {
                return .failure(SizeProblem("\"\(text)\" is not a whole number of bytes; use a smaller unit, e.g. \"1536 MiB\" for \"1.5 GiB\""))
            }
            let sum = bytes.partialValue.addingReportingOverflow(scaled.partialValue / scale)
            if sum.overflow { return .failure(SizeProblem("\"\(text)\" is too large")) }
            bytes = (sum.partialValue, false)
        }
        return .success(bytes.partialValue)
    }

    package struct SizeProblem: Error, Equatable {
        package var reason: String
        init(_ reason: String) { self.reason = reason }
    }

    /// The filesystems Kiln creates.
    static let filesystemTypes = ["ext4", "xfs", "vfat", "swap"]

    /// Longest label each filesystem keeps (bytes): e2label 16, xfs_admin 12, mkfs.vfat 11, mkswap 16.
    static let labelLimits: [String: Int] = ["ext4": 16, "xfs": 12, "vfat": 11, "swap": 16]

    /// Filesystem labels: letters, digits, `_ - .` (they become /dev/disk/by-label names), within the filesystem's limit.
    package static func labelProblem(_ label: String, fsType: String) -> String? {
        let limit = labelLimits[fsType] ?? 11
        guard !label.isEmpty, label.allSatisfy({ isAlnum($0) || "_-.".contains($0) }) else {
            return "\"\(label)\" is not a usable filesystem label; use letters, digits, '_', '-' and '.', e.g. \"data\""
        }
        if label.utf8.count > limit {
            return "\"\(label)\" is longer than the \(limit) characters a \(fsType) label can hold; shorten it"
        }
        return nil
    }

    /// Suffixes LVM keeps for its own hidden volumes (lvm(8), "VALID NAMES").
    static let lvmReservedParts = ["_cdata", "_cmeta", "_corig", "_iorig", "_mlog", "_mimage", "_pmspare", "_rimage",
                                   "_rmeta", "_tdata", "_tmeta", "_vorigin", "_vdata"]

    /// lvm(8) names: letters, digits and `+ _ . -`, not starting with '-', not `.`/`..`, at most 127 characters;
    /// logical volumes may also not be `snapshot`/`pvmove` or contain LVM's reserved suffixes.
    package static func lvmNameProblem(_ name: String, kind: String) -> String? {
        let fix = "use letters, digits, '+', '_', '.' and '-', not starting with '-', e.g. \"rootvg\" or \"homelv\""
        guard !name.isEmpty, name.count <= 127, name != ".", name != "..", name.first != "-",
              name.allSatisfy({ isAlnum($0) || "+_.-".contains($0) })
        else { return "\"\(name)\" is not a valid LVM \(kind) name; \(fix)" }
        if kind == "logical volume" {
            if name == "snapshot" || name == "pvmove" || name.hasPrefix("pvmove") {
                return "\"\(name)\" is reserved by LVM; choose another logical volume name"
            }
            if let part = lvmReservedParts.first(where: { name.contains($0) }) {
                return "\"\(name)\" contains \"\(part)\", which LVM reserves for its hidden volumes; choose another name"
            }
        }
        return nil
    }

    /// The logical volume name osbuild would generate for a mountpoint: `/` → `rootlv`, `/var/log` → `var_loglv`.
    package static func defaultLogicalVolumeName(mountpoint: String?) -> String {
        guard let mp = mountpoint else { return "swaplv" }
        if mp == "/" { return "rootlv" }
        return mp.dropFirst().replacingOccurrences(of: "/", with: "_") + "lv"
    }

    /// A GPT partition type is a GUID; a DOS one two hex digits (`83`, `8e`, `ef`).
    package static func partTypeProblem(_ value: String, table: String?) -> String? {
        let isGUID = isUUID(value)
        let isDOS = value.count == 2 && value.allSatisfy(\.isHexDigit)
        switch table {
        case "gpt": return isGUID ? nil : "\"\(value)\" is not a GPT partition type; give a type GUID such as \"0fc63daf-8483-4772-8e79-3d69d8477de4\" (Linux filesystem)"
        case "dos": return isDOS ? nil : "\"\(value)\" is not a DOS partition type; give two hex digits such as \"83\" (Linux) or \"8e\" (LVM)"
        default: return isGUID || isDOS ? nil : "\"\(value)\" is neither a GPT type GUID (\"0fc63daf-8483-4772-8e79-3d69d8477de4\") nor a DOS type (two hex digits such as \"83\")"
        }
    }

    /// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, hex digits.
    package static func isUUID(_ s: String) -> Bool {
        let groups = s.split(separator: "-", omittingEmptySubsequences: false)
        return groups.map(\.count) == [8, 4, 4, 4, 12] && groups.allSatisfy { $0.allSatisfy(\.isHexDigit) }
    }
}
