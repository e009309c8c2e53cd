import Foundation
import Protocol
import Testing

/// What one look at a full allow directory costs (10,000 keys): reading and
/// parsing every key (`load`) against listing the folders (`listing`), which
/// is all the scheduler does every 2 s while nothing changes. Runs only with
/// `KILN_BENCH_ALLOW=1`; docs/benchmarks.md has the figures.
struct AllowDirectoryBenchmark {
    @Test(.enabled(if: ProcessInfo.processInfo.environment["KILN_BENCH_ALLOW"] == "1"))
    func tenThousandKeys() throws {
        let dir = try KeyFileTests.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let folders = ["agents": 1_000, "clients": 8_000, "admins": 1_000]
        for (folder, count) in folders {
            try FileManager.default.createDirectory(atPath: "\(dir)/\(folder)", withIntermediateDirectories: true)
            for i in 0..<count {
                try (try CurveKeyPair.generate().publicKey + "\n").write(toFile: "\(dir)/\(folder)/k\(i).pub", atomically: false,
                                                                          encoding: .utf8)
            }
        }
        let allow = AllowDirectory(path: dir)
        #expect(try allow.load().roles.count == 10_000)
        func median(_ body: () throws -> Void) rethrows -> Duration {
            var times: [Duration] = []
            for _ in 0..<9 {
                let start = ContinuousClock.now
                try body()
                times.append(ContinuousClock.now - start)
            }
            return times.sorted()[times.count / 2]
        }
        let load = try median { _ = try allow.load() }
        let listing = median { _ = allow.listing() }
        print("allow directory, 10,000 keys: load \(load), listing \(listing), ratio \(load / listing)")
    }
}
