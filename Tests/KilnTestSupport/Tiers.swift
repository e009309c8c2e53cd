import Foundation
import Testing

/// The kinds of slow test, as Swift Testing tags: IDEs and `swift test list`
/// show them, and `.tier(_:)` skips by them.
extension Tag {
    /// Builds real images (trees from the Debian mirror, disks, archives).
    @Tag package static var system: Self
    /// Boots an image under qemu (TCG): a minute or more per boot.
    @Tag package static var boot: Self
    /// Starts real `kiln scheduler` and `kiln agent` processes.
    @Tag package static var farm: Self
}

/// How much of the suite a run covers, from `KILN_TESTS`:
/// - `quick`: no image builds and no VMs (every change, a few minutes);
/// - `ci` (the default): what CI proves, inside its 45-minute budget;
/// - `full`: the whole matrix, with what CI leaves out (`docs/testing.md`).
///
/// `KILN_SKIP_TAGS=boot,farm` additionally skips tests with any of those tags.
package enum TestTier: Int, Comparable, Sendable, CustomStringConvertible {
    case quick, ci, full

    package static let current: TestTier = {
        switch ProcessInfo.processInfo.environment["KILN_TESTS"]?.lowercased() {
        case "quick": .quick
        case "full": .full
        case nil, "", "ci": .ci
        case let other?:
            // A typo must not silently run (or skip) the wrong tier.
            fatalError("KILN_TESTS=\(other): expected quick, ci or full")
        }
    }()

    /// Tag names from `KILN_SKIP_TAGS` (comma-separated).
    package static let skippedTags: Set<String> = Set(
        (ProcessInfo.processInfo.environment["KILN_SKIP_TAGS"] ?? "")
            .split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty })

    package static func < (a: TestTier, b: TestTier) -> Bool { a.rawValue < b.rawValue }
    package var description: String { ["quick", "ci", "full"][rawValue] }

    /// Whether a test of `tier` with `tags` runs in this run.
    package static func runs(_ tier: TestTier, tags: [Tag]) -> Bool { whyNot(tier, tags: tags) == nil }

    /// Why a test of `tier` with `tags` does not run in this run (nil: it runs).
    package static func whyNot(_ tier: TestTier, tags: [Tag]) -> String? {
        if tier > current {
            return "in the \(tier) tier and above (ops/test\(tier == .full ? " --full" : ""), KILN_TESTS=\(tier)); this run is \(current)"
        }
        if let skipped = tags.map(name(of:)).first(where: skippedTags.contains) {
            return "tagged \(skipped), which KILN_SKIP_TAGS leaves out"
        }
        return nil
    }

    /// A tag's name as written after `@Tag` (`.system` → "system").
    static func name(of tag: Tag) -> String {
        String(describing: tag).split(separator: ".").last.map(String.init) ?? ""
    }
}

extension Trait where Self == ConditionTrait {
    /// Runs in `tier` and above (`KILN_TESTS`), unless one of `tags` is in
    /// `KILN_SKIP_TAGS`. Put the same tags in `.tags(…)` beside it.
    package static func tier(_ tier: TestTier, _ tags: Tag...) -> Self {
        let why = TestTier.whyNot(tier, tags: tags)
        return .enabled(if: why == nil, Comment(rawValue: why ?? "runs in this tier"))
    }
}
