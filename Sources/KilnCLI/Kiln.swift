import ArgumentParser
import Foundation

/// The `kiln` command; `Sources/kiln/Entry.swift` only calls `Kiln.main()`.
package struct Kiln: AsyncParsableCommand {
    package init() {}

    package static let configuration = CommandConfiguration(
        commandName: "kiln",
        abstract: "Build bootable Debian images from blueprints, reproducibly.",
        version: "0.1.0",
        subcommands: [
            BuildCommand.self, ManifestCommand.self, RunCommand.self, DepsolveCommand.self, StagesCommand.self,
            DistrosCommand.self, ImageTypesCommand.self,
            SubmitCommand.self, StatusCommand.self, LogsCommand.self, CancelCommand.self, DeleteCommand.self, FetchCommand.self,
            AgentsCommand.self, StoreCommand.self, TopCommand.self, ReportCommand.self, SchedulerCommand.self, AgentCommand.self, KeysCommand.self, TokensCommand.self,
        ])

    /// Puts the scheduler's or agent's config file into the arguments first.
    package static func main() async {
        do {
            await main(try ConfigFile.expand(Array(CommandLine.arguments.dropFirst())))
        } catch {
            FileHandle.standardError.write(Data("kiln: error: \(error)\n".utf8))
            Foundation.exit(2)
        }
    }
}
