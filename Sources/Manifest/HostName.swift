/// The one host-name rule (RFC 1123): dot-separated labels of 1–63 ASCII
/// letters, digits and hyphens, neither starting nor ending with a hyphen,
/// 253 characters in all. A blueprint's `customizations.hostname`, the
/// `org.osbuild.hostname` stage and NTP server names are checked by it.
package enum HostName {
    /// nil when `name` is a valid host name; else why not, with the fix.
    package static func problem(_ name: String) -> String? {
        let fix = "use letters, digits and '-' in dot-separated labels of at most 63 characters, e.g. \"kiln-vm\" or \"web1.example.org\""
        guard !name.isEmpty, name.utf8.count <= 253 else {
            return "\"\(name)\" is not a valid host name (1 to 253 characters); \(fix)"
        }
        for label in name.split(separator: ".", omittingEmptySubsequences: false) {
            let ok =
                !label.isEmpty && label.utf8.count <= 63 && label.first != "-" && label.last != "-"
                && label.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }
            guard ok else { return "\"\(name)\" is not a valid host name; \(fix)" }
        }
        return nil
    }
}
