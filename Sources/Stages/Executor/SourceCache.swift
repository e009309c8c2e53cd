import Crypto
import Foundation
import Logging
import Manifest
import Synchronization

/// Why a source could not be provided.
package enum SourceError: Error, Sendable, CustomStringConvertible {
    /// The downloaded file does not have the checksum the manifest pins.
    case checksumMismatch(url: String, expected: String, actual: String)
    /// The download failed.
    case fetchFailed(url: String, reason: String)
    /// A stage needs a checksum that no source in the manifest declares.
    case undeclared(checksum: String)

    package var description: String {
        switch self {
        case .checksumMismatch(let url, let expected, let actual):
            "\(url): checksum mismatch: the manifest pins \(expected) but the server sent sha256:\(actual); the mirror changed or the manifest is stale — run `kiln manifest` again"
        case .fetchFailed(let url, let reason):
            "\(url): download failed: \(reason)"
        case .undeclared(let checksum):
            "\(checksum): not declared in the manifest's sources"
        }
    }
}

/// Content-addressed files (`sources/sha256/<hex>`), verified when written
/// and when used.
package struct SourceCache: Sendable {
    package let root: String
    package let logger: Logger
    /// Parallel downloads.
    package let parallelism: Int
    /// Hits and downloads since the process started (for metrics).
    package let stats = SourceCacheStats()

    package static let defaultRoot = "/var/cache/kiln/sources"

    package init(root: String = SourceCache.defaultRoot, logger: Logger, parallelism: Int = 8) throws {
        self.root = root
        self.logger = logger
        self.parallelism = parallelism
        try FileManager.default.createDirectory(atPath: "\(root)/sha256", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: "\(root)/tmp", withIntermediateDirectories: true)
    }

    package func path(_ checksum: String) -> String { "\(root)/sha256/\(Checksum.hex(checksum))" }

    /// Makes every checksum available and verified; returns checksum → path.
    /// Corrupt cache entries are removed and fetched again.
    package func provide(_ items: [String: String], commands: CommandRunner,
                         progress: (@Sendable (Int, Int, UInt64) -> Void)? = nil) async throws -> [String: String] {
        let checksums = items.keys.sorted()
        let counter = Counter()
        let total = checksums.count
        try await withThrowingTaskGroup(of: Void.self) { group in
            var next = 0
            func add() {
                guard next < checksums.count else { return }
                let checksum = checksums[next]
                next += 1
                group.addTask {
                    let bytes = try await self.ensure(checksum, url: items[checksum]!, commands: commands)
                    let (done, sum) = counter.add(bytes)
                    progress?(done, total, sum)
                }
            }
            for _ in 0..<max(1, parallelism) { add() }
            while try await group.next() != nil { add() }
        }
        return Dictionary(uniqueKeysWithValues: checksums.map { ($0, path($0)) })
    }

    /// Returns the file's size once it is in the cache with the right digest.
    private func ensure(_ checksum: String, url: String, commands: CommandRunner) async throws -> UInt64 {
        let final = path(checksum)
        let expected = Checksum.hex(checksum)
        if FileManager.default.fileExists(atPath: final) {
            if let digest = try? Self.sha256(file: final), digest == expected {
                let size = Self.size(final)
                stats.count(hit: true, bytes: size)
                return size
            }
            logger.warning("cached source is corrupt; fetching it again", metadata: ["source.checksum": "\(checksum)"])
            try? FileManager.default.removeItem(atPath: final)
        }
        let tmp = "\(root)/tmp/\(expected).\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        do {
            // Validation admits only http(s) URLs; curl is told so too, redirects included,
            // and `--` keeps a URL from ever being read as an option.
            try await commands.run(["curl", "--fail", "--silent", "--show-error", "--location",
                                    "--proto", "=http,https", "--proto-redir", "=http,https",
                                    "--retry", "3", "--retry-delay", "1", "--connect-timeout", "20",
                                    "--output", tmp, "--", url])
        } catch let StageError.commandFailed(_, status, tail) {
            throw SourceError.fetchFailed(url: url, reason: "curl \(status): \(tail.split(separator: "\n").last ?? "")")
        }
        let actual = try Self.sha256(file: tmp)
        guard actual == expected else {
            throw SourceError.checksumMismatch(url: url, expected: checksum, actual: actual)
        }
        guard rename(tmp, final) == 0 else {
            throw SourceError.fetchFailed(url: url, reason: "cannot store into \(final): \(String(cString: strerror(errno)))")
        }
        let size = Self.size(final)
        stats.count(hit: false, bytes: size)
        return size
    }

    package static func sha256(file: String) throws -> String {
        guard let handle = FileHandle(forReadingAtPath: file) else {
            throw StageError.badPath(path: file, reason: "cannot read")
        }
        defer { try? handle.close() }
        var hasher = SHA256()
        while true {
            let chunk = handle.readData(ofLength: 1 << 20)
            if chunk.isEmpty { break }
            hasher.update(data: chunk)
        }
        return Hex.encode(hasher.finalize())
    }

    private static func size(_ path: String) -> UInt64 {
        ((try? FileManager.default.attributesOfItem(atPath: path)[.size]) as? UInt64) ?? 0
    }
}

private final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var done = 0
    private var bytes: UInt64 = 0
    func add(_ b: UInt64) -> (Int, UInt64) {
        lock.withLock { done += 1; bytes += b; return (done, bytes) }
    }
}

/// What a source cache served from disk and what it had to download.
package final class SourceCacheStats: Sendable {
    package struct Totals: Sendable, Equatable {
        package var hits = 0
        package var misses = 0
        package var hitBytes: UInt64 = 0
        package var fetchedBytes: UInt64 = 0
        package init() {}
    }

    private let totals = Mutex(Totals())

    package init() {}

    func count(hit: Bool, bytes: UInt64) {
        totals.withLock {
            if hit { $0.hits += 1; $0.hitBytes += bytes } else { $0.misses += 1; $0.fetchedBytes += bytes }
        }
    }

    package var current: Totals { totals.withLock { $0 } }
}
