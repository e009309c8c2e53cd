import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The mounts made for one piece of work, released together, newest first,
/// whatever happens. Each is also recorded in `MountTable` so that Ctrl-C or a
/// failure elsewhere can release it.
package final class MountSet: @unchecked Sendable {
    private let commands: CommandRunner
    private var mounted: [String] = []

    package init(commands: CommandRunner) { self.commands = commands }

    /// `mount ARGS… TARGET`; the target must exist. Recorded before `mount`
    /// starts: when the work is cancelled while `mount` runs, `mount` may
    /// still finish, and `release` must find it (unmounting a target that
    /// was never mounted does nothing).
    package func mount(_ args: [String], at target: String) async throws {
        mounted.append(target)
        MountTable.shared.add(target)
        do {
            try await commands.run(["mount"] + args + [target])
        } catch StageError.commandFailed(let command, let status, let tail) where status.hasPrefix("exited") {
            // `mount` said it failed: nothing was mounted, and whatever is at
            // the target already is not this set's to release.
            mounted.removeLast()
            MountTable.shared.remove(target)
            throw StageError.commandFailed(command: command, status: status, tail: tail)
        }
    }

    /// A read-only bind mount of `source` at `target`, optionally with more options (`noatime`).
    package func bindReadOnly(_ source: String, at target: String, options: [String] = []) async throws {
        try await mount(["--bind", source], at: target)
        try await commands.run(["mount", "-o", (["remount", "bind", "ro"] + options).joined(separator: ","), target])
    }

    /// A read-only, `noatime` bind mount of the checked entry `source` at
    /// `target`, made through its descriptor: what was checked is what is
    /// mounted, whatever the tree's names lead to by now.
    package func bindReadOnly(_ source: ConfinedPath, at target: String) throws {
        guard Glibc.mount(source.procPath, target, nil, UInt(MS_BIND), nil) == 0 else {
            throw StageError.badPath(path: source.inTree, reason: "cannot bind it at \(target): \(String(cString: strerror(errno)))")
        }
        mounted.append(target)
        MountTable.shared.add(target)
        guard Glibc.mount(nil, target, nil, UInt(MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOATIME), nil) == 0 else {
            throw StageError.badPath(path: target, reason: "cannot make the view read-only: \(String(cString: strerror(errno)))")
        }
    }

    /// Releases `target` with the rest if something else mounted it there (a
    /// program of the stage's own): nothing happens when it is not mounted.
    package func track(_ target: String) {
        mounted.append(target)
        MountTable.shared.add(target)
    }

    /// Unmounts everything, newest first (lazily when a mount is busy).
    package func release() {
        for p in mounted.reversed() {
            if umount2(p, 0) != 0 { _ = umount2(p, Int32(MNT_DETACH)) }
            MountTable.shared.remove(p)
        }
        mounted.removeAll()
    }

    /// Runs `body` and releases the mounts afterwards, on success and on failure.
    package func releasing<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        do {
            let result = try await body()
            release()
            return result
        } catch {
            release()
            throw error
        }
    }
}
