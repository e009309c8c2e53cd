import Foundation

/// Runs lvm2 commands on a read-only loop device over `offset..<offset+size`
/// of an image file, with a private configuration (in `scratch`) that sees
/// only that device and writes nothing: the host's own volumes, devices file,
/// backups and udev stay out of it. `DEVICE` in an argument list stands for
/// the loop device. The loop device is detached afterwards.
package func privateLVM(file: String, offset: Int64, size: Int64, scratch: String,
                        _ commands: [[String]]) async throws -> [ChildOutput] {
    let attach = try await runChild("/usr/bin/env", ["losetup", "--read-only", "--find", "--show", "--offset", String(offset),
                                                    "--sizelimit", String(size), file])
    let loop = attach.output.trimmingCharacters(in: .whitespacesAndNewlines)
    guard attach.status == 0, loop.hasPrefix("/dev/") else {
        throw PrivateLVMError(reason: "losetup failed: \(attach.errors)")
    }
    let dir = scratch + "/lvm-\(UUID().uuidString.prefix(8))"
    var outputs: [ChildOutput] = []
    do {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try """
            devices { filter = [ "a|^\(loop)$|", "r|.*|" ] use_devicesfile = 0 obtain_device_list_from_udev = 0 }
            global { event_activation = 0 }
            activation { udev_sync = 0 udev_rules = 0 monitoring = 0 }
            backup { backup = 0 archive = 0 }

            """.write(toFile: dir + "/lvm.conf", atomically: true, encoding: .utf8)
        for argv in commands {
            outputs.append(try await runChild("/usr/bin/env", argv.map { $0 == "DEVICE" ? loop : $0 },
                                              environment: ["LVM_SYSTEM_DIR": dir, "LVM_SUPPRESS_FD_WARNINGS": "1"]))
        }
    } catch {
        _ = try? await runChild("/usr/bin/env", ["losetup", "--detach", loop])
        throw error
    }
    _ = try await runChild("/usr/bin/env", ["losetup", "--detach", loop])
    try? FileManager.default.removeItem(atPath: dir)
    return outputs
}

package struct PrivateLVMError: Error, CustomStringConvertible {
    package let reason: String
    package var description: String { reason }
}
