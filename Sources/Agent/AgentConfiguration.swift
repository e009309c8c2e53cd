import Foundation
import Manifest
import Protocol
import Stages

/// How an agent connects and what it offers.
package struct AgentConfiguration: Sendable {
    /// Stable name; the routing id on the wire.
    package var agentID: String
    package var schedulerEndpoint: String
    /// CURVE client keys and the pinned scheduler key; nil on `inproc://`.
    package var keys: CurveKeyPair?
    package var schedulerPublicKey: String?
    /// Architectures it runs natively / through qemu-user binfmt.
    package var arches: [String]
    package var emulatedArches: [String]
    package var slots: Int = 1
    /// Holds `spool/` (streams kept until acknowledged) and `logs/`.
    package var stateDirectory: String
    /// The scheduler reads this agent's tree store directly (embedded mode):
    /// finished trees are reported, not streamed.
    package var sharesStoreWithScheduler = false
    /// Below this many bytes free on the file system of its tree store or
    /// of its state directory the agent takes no new job, and says so in
    /// its heartbeats, until space returns (`--min-free-gib`, 2 GiB; 0 here:
    /// no check, as in `kiln build`'s embedded farm).
    package var minFreeBytes: UInt64 = 0
    /// How often the tree store is pruned to its cap when nothing was stored
    /// (a stored tree prunes within a second anyway); nil: never (an agent
    /// that shares the scheduler's store leaves it to the scheduler).
    package var storePruneInterval: Duration?
    /// Reconnection back-off: first delay and cap.
    package var backoffInitial: Duration = .milliseconds(250)
    package var backoffMax: Duration = .seconds(30)
    /// The longest wait before asking again a scheduler that refused this
    /// agent's Hello (its key in the wrong folder, its id bound to another key).
    package var refusedRetry: Duration = .seconds(3)

    package init(agentID: String, schedulerEndpoint: String, arches: [String], emulatedArches: [String],
                 stateDirectory: String) {
        self.agentID = agentID
        self.schedulerEndpoint = schedulerEndpoint
        self.arches = arches
        self.emulatedArches = emulatedArches
        self.stateDirectory = stateDirectory
    }

    package var spoolDirectory: String { stateDirectory + "/spool" }
    package var logsDirectory: String { stateDirectory + "/logs" }
}

/// What this host can run.
package enum HostArchitectures {
    /// True when the kernel runs `arch` binaries natively or through an
    /// enabled qemu-user binfmt handler.
    package static func canRun(_ arch: Architecture) -> Bool {
        if arch == .host { return true }
        let handler = "/proc/sys/fs/binfmt_misc/qemu-\(arch.rawValue)"
        guard let text = try? String(contentsOfFile: handler, encoding: .utf8) else { return false }
        return text.hasPrefix("enabled")
    }

    /// Splits requested architectures into native and emulated ones, or says
    /// why one cannot run here.
    package static func split(_ requested: [Architecture]) throws(AgentError) -> (native: [String], emulated: [String]) {
        var native: [String] = []
        var emulated: [String] = []
        for a in requested {
            if a == .host { native.append(a.rawValue); continue }
            guard canRun(a) else { throw .cannotRun(a.rawValue) }
            emulated.append(a.rawValue)
        }
        return (native, emulated)
    }

    /// Bytes free on the filesystem holding `path`.
    package static func freeDisk(_ path: String) -> UInt64 {
        var s = statvfs()
        guard statvfs(path, &s) == 0 else { return 0 }
        return UInt64(s.f_bavail) * UInt64(s.f_frsize)
    }
}

/// Why an agent cannot start (bad input: the command line asks for what this host cannot do).
package enum AgentError: Error, CustomStringConvertible {
    /// The host cannot run programs of this architecture.
    case cannotRun(String)
    /// Another agent holds the state directory.
    case stateDirectoryInUse(String)

    package var description: String {
        switch self {
        case .cannotRun(let a):
            "--arch \(a): this host cannot run \(a) programs; install qemu-user-static and binfmt-support and enable "
                + "the handler (`mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc; update-binfmts --enable qemu-\(a)`, "
                + "as ops/install-deps does)"
        case .stateDirectoryInUse(let dir):
            "--state \(dir): another agent is running with this state directory (it holds \(dir)/agent.lock); "
                + "give each agent a state directory of its own"
        }
    }
}
