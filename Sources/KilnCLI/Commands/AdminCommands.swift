import ArgumentParser
import Foundation
import Protocol
import Scheduler
import Stages

/// Where an operator's command finds the scheduler's state (on its host).
struct SchedulerStateOptions: ParsableArguments {
    @Option(help: "The scheduler's state directory (scheduler.sqlite).")
    var state: String = "/var/lib/kiln/scheduler"

    @Option(help: "The scheduler's tree store.")
    var store: String = TreeStore.defaultRoot

    func admin() throws -> SchedulerAdmin {
        guard FileManager.default.fileExists(atPath: store + "/objects") else {
            throw CLIError.badInput("--store \(store): no tree store there (no objects/); name the scheduler's --store")
        }
        return try SchedulerAdmin(stateDirectory: state, store: try TreeStore(root: store))
    }
}

extension AdminError: BadInput {}

extension AllowDirectoryError: BadInput {
    var isBadInput: Bool { true }
}

struct StoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "store",
        abstract: "The scheduler's tree store, on the scheduler's host: who stored each tree, and forgetting trees.",
        subcommands: [List.self, Forget.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List stored trees with the agent and key that stored each, when, and the stream's sha256.")

        @OptionGroup var where_: SchedulerStateOptions

        @Option(help: "Only trees stored by agents with this key (Z85, or a .pub file).")
        var agent: String?

        func run() async throws {
            try await CLI.main {
                let key = try agent.map(StoreCommand.agentKey)
                let trees = try await where_.admin().trees(agentKey: key)
                Listing.table(
                    ["TREE", "AGENT", "KEY", "STORED", "STREAM SHA256", "BUILD"],
                    trees.map { t in
                        [
                            t.pipelineID, t.agentID.isEmpty ? "(no record)" : t.agentID, t.agentKey, Listing.time(t.storedMS),
                            String(t.streamSHA256.prefix(16)), t.buildID,
                        ]
                    })
            }
        }
    }

    struct Forget: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove trees from the store (they are built again when next needed).",
            discussion: "Give tree IDs, or --agent KEY for every tree that agents with that key stored.")

        @OptionGroup var where_: SchedulerStateOptions

        @Argument(help: "Tree IDs (content IDs, as `kiln store list` shows them).")
        var ids: [String] = []

        @Option(help: "Forget every tree stored by agents with this key (Z85, or a .pub file).")
        var agent: String?

        func run() async throws {
            try await CLI.main {
                if ids.isEmpty == (agent == nil) {
                    throw CLIError.badInput("kiln store forget: give tree IDs or --agent KEY (one of the two)")
                }
                let admin = try where_.admin()
                let gone = if let agent { try await admin.forget(agentKey: try StoreCommand.agentKey(agent)) } else { try await admin.forget(ids) }
                for t in gone {
                    let by =
                        !t.derivedFrom.isEmpty
                        ? " (made on the scheduler from \(t.derivedFrom))"
                        : t.agentID.isEmpty ? "" : " (stored by agent \(t.agentID))"
                    let used = t.usedBy.isEmpty ? "" : "; builds that used it: \(t.usedBy.joined(separator: ", "))"
                    print("forgot \(t.pipelineID)\(by)\(used)")
                }
                CLI.say("kiln store forget: \(gone.count) tree(s) removed")
            }
        }
    }

    /// A Z85 public key, given as such or as a `.pub` file.
    static func agentKey(_ text: String) throws -> String {
        if FileManager.default.fileExists(atPath: text) { return try CurveKeyPair.loadPublicKey(text) }
        guard text.utf8.count == 40, text.utf8.allSatisfy({ $0 > 32 && $0 < 127 }) else {
            throw CLIError.badInput("--agent \(text): not a public key (40 Z85 characters) nor a .pub file")
        }
        return text
    }
}

struct AgentsReleaseCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "release",
        abstract: "On the scheduler's host: free an agent id from the key it is bound to (the next Hello binds it anew).")

    @OptionGroup var where_: SchedulerStateOptions

    @Argument(help: "The agent id (as `kiln agents` shows it).")
    var id: String

    func run() async throws {
        try await CLI.main {
            let old = try await where_.admin().releaseAgent(id)
            CLI.say("kiln agents release: agent id \(id) is no longer bound to \(old.isEmpty ? "any key" : "key \(old)")")
        }
    }
}
