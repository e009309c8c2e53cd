import Foundation

/// What a finished child process left: its exit status and what it printed.
package struct ChildOutput: Sendable {
    package let status: Int32
    /// Standard output, and standard error too when `mergeErrors` was set.
    package let output: String
    package let errors: String
}

/// Runs a program to its end on a thread of its own and resumes the caller
/// then. Tests run in parallel on the cooperative pool (two threads on CI):
/// a test that blocked one of them in `waitUntilExit` for a whole image
/// build starved every other test's timers, and their waits ran out.
package func runChild(
    _ executable: String, _ arguments: [String], environment: [String: String]? = nil,
    directory: String? = nil, mergeErrors: Bool = false
) async throws -> ChildOutput {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = arguments
    if let environment { p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
    if let directory { p.currentDirectoryURL = URL(fileURLWithPath: directory) }
    let out = Pipe()
    let err = mergeErrors ? out : Pipe()
    p.standardOutput = out
    p.standardError = err
    p.standardInput = FileHandle.nullDevice
    try p.run()
    return await withCheckedContinuation { continuation in
        Thread.detachNewThread {
            // Both pipes are drained at once so that neither fills and stalls the child.
            let errors = mergeErrors ? nil : Drained(err)
            let output = out.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            continuation.resume(returning: ChildOutput(
                status: p.terminationStatus, output: String(decoding: output, as: UTF8.self),
                errors: String(decoding: errors?.value ?? Data(), as: UTF8.self)))
        }
    }
}

/// Reads a pipe to its end on another thread; `value` waits for it.
private final class Drained: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private var data = Data()
    init(_ pipe: Pipe) {
        Thread.detachNewThread { [self] in
            data = pipe.fileHandleForReading.readDataToEndOfFile()
            done.signal()
        }
    }
    var value: Data { done.wait(); return data }
}

extension Process {
    /// Waits for the process to exit without holding a cooperative thread.
    package func exited() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            Thread.detachNewThread { [self] in
                waitUntilExit()
                continuation.resume()
            }
        }
    }
}

/// Whether process `pid` has ended: gone, or a zombie nobody reaped yet.
package func processEnded(_ pid: Int32) -> Bool {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let close = stat.lastIndex(of: ")") else { return true }
    let state = stat[stat.index(after: close)...].split(separator: " ").first
    return state == "Z" || state == "X"
}

/// Waits until `condition` holds, checking every `interval`, for at most
/// `timeout`; returns whether it held (checked once more at the deadline).
package func waitFor(_ timeout: Duration, interval: Duration = .milliseconds(20),
                     _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: interval)
    }
    return try await condition()
}

/// Runs `argv` (looked up in PATH) to its end on the calling thread and
/// returns its exit status and standard output (standard error is dropped).
/// For set-up code outside the cooperative pool; tests use `runChild`.
package func runBlocking(_ argv: [String], directory: String? = nil) throws -> (status: Int32, output: Data) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = argv
    if let directory { p.currentDirectoryURL = URL(fileURLWithPath: directory) }
    let out = Pipe()
    p.standardOutput = out
    p.standardError = FileHandle.nullDevice
    try p.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, data)
}

/// A process that really ran and is gone, for tests of what a dead process
/// leaves behind: starts `sleep`, lets `whileAlive` read what it needs from
/// `/proc/PID` (its start time, say), then kills it and waits for it.
package func withKilledProcess<T>(_ whileAlive: (Int32) throws -> T) throws -> T {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/sleep")
    p.arguments = ["60"]
    try p.run()
    defer {
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
    }
    return try whileAlive(p.processIdentifier)
}
