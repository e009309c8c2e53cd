import ArgumentParser

@main
struct Kiln: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kiln",
        abstract: "Build bootable Debian images from blueprints, reproducibly.",
        version: "0.1.0",
        subcommands: [RunCommand.self, StagesCommand.self])
}
