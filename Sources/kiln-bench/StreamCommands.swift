import Agent
import ArgumentParser
import Foundation
import KilnCLI
import Protocol
import Scheduler
import Stages

/// `kiln-bench` commands for measuring tree streaming between two processes
/// (ops/bench/stream): one receives like the scheduler, one sends like an
/// agent, over TCP with CURVE and the ZAP allow-list.

struct StreamKeysCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stream-keys",
        abstract: "Make DIR/receiver.{key,pub}, DIR/sender.{key,pub} and DIR/allow/agents/sender.pub.")

    @Argument(help: "Directory for the keys (created).") var directory: String

    func run() async throws {
        try await CLI.main {
            try FileManager.default.createDirectory(atPath: "\(directory)/allow/agents", withIntermediateDirectories: true)
            _ = try CurveKeyPair.generate().write(prefix: "\(directory)/receiver")
            let (_, senderPublic) = try CurveKeyPair.generate().write(prefix: "\(directory)/sender")
            // The allow-list holds public keys only.
            try FileManager.default.copyItem(atPath: senderPublic, toPath: "\(directory)/allow/agents/sender.pub")
        }
    }
}

struct TreeReceiveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tree-receive",
        abstract: "Receive one tree stream into a tree store; print its figures as JSON.")

    @Option(help: "Endpoint to bind, e.g. tcp://127.0.0.1:5999.") var bind: String
    @Option(help: "Tree store that receives the tree.") var store: String
    @Option(help: "This side's secret key file.") var key: String
    @Option(help: "Allow directory (agents/, clients/, admins/ of *.pub keys).") var allow: String
    @Option(help: "Attempt ID of the stream.") var attempt: UInt64 = 1
    @Option(help: "Pipeline ID to store the tree as.") var pipelineID = "stream-bench"
    @Option(name: .customLong("window-mib"), help: "Credit window in MiB ahead of the verified prefix.")
    var windowMiB: UInt64 = 8

    func run() async throws {
        try await CLI.main {
            let keys = try CurveKeyPair.load(secretKeyFile: key)
            let context = try ZMQContext()
            let zap = try await ZAPHandler.start(context: context, domain: "kiln", allowedKeys: try AllowDirectory(path: allow).load().keys)
            let router = try await ZMQSocketThread.start(
                context: context,
                configuration: ZMQSocketConfiguration(.router, .bind(bind), curve: .server(keys: keys, zapDomain: "kiln")))
            emit("listening \(router.endpoint)")
            var inbound = router.inbound.makeAsyncIterator()
            // The sender speaks first (a Heartbeat); its identity routes the replies.
            guard let hello = await inbound.next(), let identity = try? Framing.decode(hello.frames, routed: true).identity else {
                throw CLIError.badInput("no sender connected")
            }
            let download = try TreeDownload(
                attemptID: attempt, pipelineID: pipelineID, store: try TreeStore(root: store),
                window: windowMiB << 20
            ) { message in
                try await router.send(try Framing.encode(message, identity: identity))
            }
            let routing = Task {
                while let raw = await inbound.next() {
                    if let message = try? Framing.decode(raw.frames, routed: true).message { download.deliver(message) }
                }
            }
            download.start(restart: false)
            let stats = try await download.result()
            printJSON([
                "compressed_bytes": Double(stats.compressedBytes), "tree_bytes": Double(stats.treeBytes),
                "entries": Double(stats.entries), "seconds": stats.seconds, "resends": Double(stats.resends),
                "vm_hwm_kib": Double(peakResidentKiB() ?? 0),
            ])
            try await Task.sleep(for: .milliseconds(200))  // let the Ack leave before the socket closes
            routing.cancel()
            await router.close()
            await zap.close()
        }
    }
}

struct TreeSendCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tree-send",
        abstract: "Stream a tree to `kiln-bench tree-receive`; print its figures as JSON.")

    @Option(help: "Receiver endpoint, e.g. tcp://127.0.0.1:5999.") var connect: String
    @Option(help: "The tree to send (read only).") var tree: String
    @Option(help: "This side's secret key file.") var key: String
    @Option(help: "The receiver's public key file.") var schedulerKey: String
    @Option(help: "Where the stream is spooled until acknowledged.") var spool = "/var/tmp/kiln-spool"
    @Option(help: "Attempt ID of the stream.") var attempt: UInt64 = 1
    @Option(help: "Largest chunk in bytes.") var chunkBytes = 1 << 20
    @Option(help: "zstd level.") var level = TreeArchive.Compression.default.level
    @Option(help: "zstd worker threads (0: compress on the archiving thread).") var threads = TreeArchive.Compression.default.threads

    func run() async throws {
        try await CLI.main {
            let keys = try CurveKeyPair.load(secretKeyFile: key)
            let serverKey = try CurveKeyPair.loadPublicKey(schedulerKey)
            let dealer = try await ZMQSocketThread.start(
                context: try ZMQContext(),
                configuration: ZMQSocketConfiguration(.dealer, .connect(connect), curve: .client(keys: keys, serverPublicKey: serverKey)))
            let send: @Sendable (WireMessage) async throws -> Void = { try await dealer.send(try Framing.encode($0)) }
            let upload = TreeUpload(
                attemptID: attempt, tree: tree, spoolDirectory: spool, maxChunkBytes: chunkBytes,
                compression: .init(level: level, threads: threads), send: send)
            let routing = Task {
                for await raw in dealer.inbound {
                    if let message = try? Framing.decode(raw.frames, routed: false).message { upload.deliver(message) }
                }
            }
            try await send(WireMessage(.heartbeat(Kiln_V1_Heartbeat())))
            let stats = try await upload.run()
            routing.cancel()
            await dealer.close()
            printJSON([
                "bytes": Double(stats.bytes), "seconds": stats.seconds, "chunks": Double(stats.chunks),
                "resend_requests": Double(stats.resendRequests), "vm_hwm_kib": Double(peakResidentKiB() ?? 0),
            ])
        }
    }
}

/// This process's peak resident set (VmHWM in /proc/self/status), KiB.
private func peakResidentKiB() -> Int? {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
        let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") })
    else { return nil }
    return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
}

private func printJSON(_ fields: [String: Double]) {
    let data = (try? JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys])) ?? Data("{}".utf8)
    emit(String(decoding: data, as: UTF8.self))
}

/// One line on stdout, unbuffered (a script waits for it).
private func emit(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}
