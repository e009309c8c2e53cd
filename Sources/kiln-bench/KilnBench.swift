import ArgumentParser

/// The benchmarks' simulators, apart from the `kiln` that users run:
/// `ops/bench/dispatch` runs `dispatch-sim`, `ops/bench/stream` the tree stream's two ends.
@main
struct KilnBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kiln-bench", abstract: "Simulators for Kiln's benchmarks (ops/bench).",
        subcommands: [DispatchSimCommand.self, TreeSendCommand.self, TreeReceiveCommand.self, StreamKeysCommand.self])
}
