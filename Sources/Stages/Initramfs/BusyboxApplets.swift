import Foundation

/// Busybox's applet list read from the binary itself (`applet_names`, a
/// sorted run of NUL-terminated names starting with `[` and `[[`), instead of
/// running `busybox --list-long` on a possibly foreign architecture.
package enum BusyboxApplets {
    /// Applets Debian's busybox installs under `/sbin` or `/usr/sbin` (from `--list-long` of bookworm's busybox);
    /// every other applet goes to `/bin`, as zz-busybox places them.
    static let sbinApplets: Set<String> = [
        "acpid", "adjtimex", "arp", "arping", "blkid", "blockdev", "brctl", "chroot", "depmod", "devmem", "fdisk",
        "findfs", "freeramdisk", "fsfreeze", "fstrim", "getty", "halt", "httpd", "hwclock", "i2cdetect", "i2cdump",
        "i2cget", "i2cset", "i2ctransfer", "ifconfig", "ifdown", "ifup", "init", "insmod", "ip", "ipneigh", "klogd",
        "loadfont", "loadkmap", "logread", "losetup", "lsmod", "mdev", "mim", "mkdosfs", "mke2fs", "mkswap", "modinfo",
        "modprobe", "nameif", "nologin", "partprobe", "pivot_root", "poweroff", "rdate", "reboot", "rmmod", "route",
        "run-init", "start-stop-daemon", "swapoff", "swapon", "switch_root", "sysctl", "syslogd", "ubirename", "udhcpc",
        "udhcpd", "uevent", "vconfig", "watchdog", "mkfs.ext2", "mkfs.vfat", "fsck", "tunctl", "zcip", "setfont",
    ]

    /// Applet names in the busybox binary `data`; empty when the table is not found.
    package static func names(in data: Data) -> [String] {
        let bytes = [UInt8](data)
        let marker: [UInt8] = [0, 0x5B, 0, 0x5B, 0x5B, 0]  // "\0[\0[[\0"
        guard bytes.count > marker.count else { return [] }
        var start: Int?
        outer: for i in 0...(bytes.count - marker.count) {
            for j in 0..<marker.count where bytes[i + j] != marker[j] { continue outer }
            start = i + 1
            break
        }
        guard var i = start else { return [] }
        var names: [String] = []
        while i < bytes.count {
            var end = i
            while end < bytes.count, bytes[end] != 0 { end += 1 }
            guard end > i, end - i < 64 else { break }
            let slice = bytes[i..<end]
            guard slice.allSatisfy({ (0x61...0x7A).contains($0) || (0x30...0x39).contains($0) || "[]-_.".utf8.contains($0) || (0x41...0x5A).contains($0) }) else { break }
            let name = String(decoding: slice, as: UTF8.self)
            if let last = names.last, !(Array(last.utf8).lexicographicallyPrecedes(Array(name.utf8))) { break }
            names.append(name)
            i = end + 1
        }
        return names
    }

    /// Where zz-busybox links `applet` (after stripping `/usr`): `/sbin/x` or `/bin/x`.
    static func location(of applet: String) -> String {
        sbinApplets.contains(applet) ? "/sbin/\(applet)" : "/bin/\(applet)"
    }
}
