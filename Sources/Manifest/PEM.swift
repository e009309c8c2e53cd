import Foundation

/// PEM blocks (`-----BEGIN KIND-----` … `-----END KIND-----`) in a text: the
/// blueprint's rules check certificates and keys with them, and
/// `org.kiln.cacerts` writes one file per certificate from them.
package enum PEM {
    /// One block of a text.
    package struct Block: Sendable {
        /// The whole block, from its BEGIN marker to the end of its END marker.
        package var text: Substring
        /// The base64 body between the markers.
        package var body: Substring
    }

    /// Every block of `kind` (`CERTIFICATE`, `PGP PUBLIC KEY BLOCK`) in `text`, in
    /// order; nil when there is none or one is not closed. Text between blocks is skipped.
    package static func blocks(of kind: String, in text: String) -> [Block]? {
        let begin = "-----BEGIN \(kind)-----", end = "-----END \(kind)-----"
        var blocks: [Block] = []
        var rest = Substring(text)
        while let b = rest.range(of: begin) {
            guard let e = rest.range(of: end, range: b.upperBound..<rest.endIndex) else { return nil }
            blocks.append(Block(text: rest[b.lowerBound..<e.upperBound], body: rest[b.upperBound..<e.lowerBound]))
            rest = rest[e.upperBound...]
        }
        return blocks.isEmpty ? nil : blocks
    }
}
