import Metrics
import Prometheus
import Synchronization

/// Records through swift-metrics into a Prometheus registry of its own (not
/// the process-wide `MetricsSystem`: a test process holds several
/// schedulers and agents). The scheduler's and the agent's metrics build on it.
package final class MetricsRecorder: Sendable {
    package let registry: PrometheusCollectorRegistry
    private let factory: PrometheusMetricsFactory
    private let totals = Mutex<[String: Int64]>([:])
    /// Handles made once per series: making one goes through the factory
    /// and the registry's lock on every call, which the dispatch path felt.
    private let handles = Mutex<[String: any Sendable]>([:])

    package init() {
        registry = PrometheusCollectorRegistry()
        var f = PrometheusMetricsFactory(registry: registry)
        // From a no-op stage to an emulated trixie tree: 50 ms to an hour.
        f.defaultDurationHistogramBuckets = [
            .milliseconds(50), .milliseconds(250), .seconds(1), .seconds(5), .seconds(15), .seconds(30), .seconds(60),
            .seconds(120), .seconds(300), .seconds(600), .seconds(1200), .seconds(3600),
        ]
        factory = f
    }

    private func handle<H: Sendable>(_ name: String, _ dimensions: [(String, String)], _ make: () -> H) -> H {
        var key = name
        for (k, v) in dimensions { key += "\u{1}\(k)\u{2}\(v)" }
        return handles.withLock { h in
            if let x = h[key] as? H { return x }
            let x = make()
            h[key] = x
            return x
        }
    }

    package func count(_ name: String, _ dimensions: [(String, String)] = [], by n: Int64 = 1) {
        handle(name, dimensions) { Counter(label: name, dimensions: dimensions, factory: factory) }.increment(by: max(0, n))
    }

    /// Adds a fraction (seconds saved, say) to counter `name`.
    package func add(_ name: String, _ dimensions: [(String, String)] = [], _ value: Double) {
        handle(name, dimensions) { FloatingPointCounter(label: name, dimensions: dimensions, factory: factory) }
            .increment(by: max(0, value))
    }

    /// Records a duration into the histogram `name` (seconds in the exposition).
    package func time(_ name: String, _ dimensions: [(String, String)] = [], ms: Int64) {
        handle(name, dimensions) { Metrics.Timer(label: name, dimensions: dimensions, factory: factory) }
            .recordNanoseconds(max(0, ms) * 1_000_000)
    }

    package func gauge(_ name: String, _ dimensions: [(String, String)] = [], _ value: Double) {
        handle(name, dimensions) { Gauge(label: name, dimensions: dimensions, factory: factory) }.record(value)
    }

    /// Makes counter `name` show `total`, a running total kept elsewhere
    /// (such as a source cache's hits): adds what grew since the last call.
    package func total(_ name: String, _ total: Int64) {
        let grew = totals.withLock { t -> Int64 in
            let before = t[name] ?? 0
            t[name] = max(before, total)
            return total - before
        }
        count(name, by: grew)
    }

    /// The exposition text (format 0.0.4).
    package func emit() -> [UInt8] { registry.emitToBuffer() }
}
