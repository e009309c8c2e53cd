/// A target architecture, with the names other tools use for it.
public enum Architecture: String, Sendable, CaseIterable, Codable {
    case x86_64
    case aarch64

    /// Accepts Kiln's names and Debian's (`amd64`, `arm64`).
    public init?(name: String) {
        switch name {
        case "x86_64", "amd64": self = .x86_64
        case "aarch64", "arm64": self = .aarch64
        default: return nil
        }
    }

    /// dpkg's name.
    public var debian: String { self == .x86_64 ? "amd64" : "arm64" }
    /// GRUB's EFI platform directory under /usr/lib/grub.
    public var grubEFITarget: String { self == .x86_64 ? "x86_64-efi" : "arm64-efi" }
    /// The removable-media EFI binary name.
    public var efiBinary: String { self == .x86_64 ? "BOOTX64.EFI" : "BOOTAA64.EFI" }
    /// The serial console device of qemu's default machine.
    public var serialConsole: String { self == .x86_64 ? "ttyS0" : "ttyAMA0" }
    /// GPT type GUID of the root partition (Discoverable Partitions Specification).
    public var rootPartitionType: String {
        self == .x86_64 ? "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709" : "B921B045-1DF0-41C3-AF44-4C6F280D3FAE"
    }

    /// The architecture of the machine running this process.
    public static var host: Architecture {
        #if arch(x86_64)
        return .x86_64
        #else
        return .aarch64
        #endif
    }
}
