import Foundation

/// The URLs Kiln fetches sources from: `http://` and `https://` only, with a
/// host, in printable ASCII. Anything else (another scheme, a value curl would
/// read as an option, a line break) is refused while the manifest is read.
public enum SourceURL {
    public static let schemes: Set<String> = ["http", "https"]

    /// Why `url` is not fetched, or nil when it is fine.
    public static func problem(_ url: String) -> String? {
        if url.isEmpty { return "is empty; give an http:// or https:// URL" }
        if let bad = url.unicodeScalars.first(where: { $0.value <= 0x20 || $0.value >= 0x7F }) {
            return "contains \(bad.value <= 0x20 || bad.value == 0x7F ? "a control character or space" : "a non-ASCII character") (U+\(String(bad.value, radix: 16, uppercase: true))); percent-encode it"
        }
        guard let c = URLComponents(string: url), let scheme = c.scheme?.lowercased() else {
            return "is not a URL; give an http:// or https:// URL"
        }
        guard schemes.contains(scheme), url.lowercased().hasPrefix(scheme + "://") else {
            return "scheme \"\(scheme)\" is not fetched; Kiln fetches sources over http:// or https:// only"
        }
        guard let host = c.host, !host.isEmpty else {
            return "has no host; give an http:// or https:// URL with a host"
        }
        return nil
    }
}
