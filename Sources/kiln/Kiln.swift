import ArgumentParser

@main
struct Kiln: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kiln",
        abstract: "Build bootable Debian images from blueprints, reproducibly.",
        version: "0.1.0",
        subcommands: [BuildCommand.self, ManifestCommand.self, RunCommand.self, DepsolveCommand.self, StagesCommand.self,
                      DistrosCommand.self, ImageTypesCommand.self,
                      SubmitCommand.self, StatusCommand.self, LogsCommand.self, CancelCommand.self, FetchCommand.self,
                      AgentsCommand.self, SchedulerCommand.self, AgentCommand.self, KeysCommand.self,
                      InternalCommand.self])
}
