import Logging
import Synchronization

/// Warnings about what peers send, at most one per peer and port per `interval`; the
/// next one says how many were left out. A flood of bad messages costs a
/// log line every few seconds, not one per message.
final class RateLimitedWarnings: Sendable {
    private let logger: Logger
    private let interval: Duration
    private let state = Mutex<[String: (last: ContinuousClock.Instant, suppressed: Int)]>([:])

    init(logger: Logger, interval: Duration = .seconds(10)) {
        self.logger = logger
        self.interval = interval
    }

    /// port: which socket ("agent", "client"); each has its own allowance.
    func warn(peer: String, on port: String, _ message: String) {
        let now = ContinuousClock.now
        let key = port + " " + peer
        let suppressed = state.withLock { peers -> Int? in
            if let p = peers[key], now - p.last < interval {
                peers[key]?.suppressed += 1
                return nil
            }
            if peers.count >= 10_000 { peers.removeAll() }  // bounded whatever the number of peers
            defer { peers[key] = (now, 0) }
            return peers[key]?.suppressed ?? 0
        }
        guard let suppressed else { return }
        let more = suppressed > 0 ? " (and \(suppressed) more from this peer since the last warning)" : ""
        logger.warning("\(message)\(more)", metadata: ["peer.key": "\(peer)", "peer.port": "\(port)"])
    }
}
