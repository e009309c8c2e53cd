import Agent
import ArgumentParser
import Foundation
import HTTPServing
import Protocol

/// How a client command reaches the scheduler.
struct ClientOptions: ParsableArguments {
    @Option(help: "Scheduler endpoint, tcp://HOST:PORT (env KILN_SCHEDULER).")
    var scheduler: String?

    @Option(help: "This client's CURVE secret key file, NAME.key from `kiln keys new` (env KILN_KEY).")
    var key: String?

    @Option(help: "The scheduler's public key file (env KILN_SCHEDULER_KEY).")
    var schedulerKey: String?

    var endpoint: String? { scheduler ?? ProcessInfo.processInfo.environment["KILN_SCHEDULER"] }

    /// Runs `body` with a connected client and closes it afterwards.
    func with<T>(_ body: (SchedulerClient) async throws -> T) async throws -> T {
        let (context, c) = try await connect()
        defer { withExtendedLifetime(context) { Task { await c.close() } } }
        return try await body(c)
    }

    /// Connects to the scheduler's client socket (CURVE over TCP).
    func connect() async throws -> (ZMQContext, SchedulerClient) {
        guard let endpoint else {
            throw CLIError.badInput("no scheduler: pass --scheduler tcp://HOST:PORT or set KILN_SCHEDULER")
        }
        let env = ProcessInfo.processInfo.environment
        var keys: CurveKeyPair?
        var server: String?
        if endpoint.hasPrefix("tcp://") {
            guard let keyFile = key ?? env["KILN_KEY"] else {
                throw CLIError.badInput(
                    "--key: a TCP scheduler needs this client's secret key file (`kiln keys new NAME` makes one; the scheduler must allow NAME.pub)")
            }
            guard let serverFile = schedulerKey ?? env["KILN_SCHEDULER_KEY"] else {
                throw CLIError.badInput("--scheduler-key: a TCP scheduler needs its public key file (the scheduler's NAME.pub)")
            }
            keys = try CurveKeyPair.load(secretKeyFile: keyFile)
            server = try CurveKeyPair.loadPublicKey(serverFile)
        }
        let context = try ZMQContext()
        let client = try await SchedulerClient.connect(
            context: context, endpoint: try SchedulerEndpoint.clients(endpoint),
            keys: keys, schedulerPublicKey: server)
        return (context, client)
    }
}

extension KeyFileError: BadInput { var isBadInput: Bool { true } }
extension EndpointError: BadInput { var isBadInput: Bool { true } }
extension HTTPEndpointError: BadInput { var isBadInput: Bool { true } }
extension AgentError: BadInput { var isBadInput: Bool { true } }
extension ClientError: BadInput {}

/// A build that ended without success (exit code 1, or 130 when cancelled).
struct BuildOutcomeError: Error, CustomStringConvertible {
    let buildID: String
    let state: Kiln_V1_BuildState
    let failure: String
    var description: String {
        state == .cancelled ? "build \(buildID) was cancelled" : "build \(buildID) failed: \(failure)"
    }
}
