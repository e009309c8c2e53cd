import Foundation
import Manifest
#if canImport(Glibc)
import Glibc
#endif

/// Addresses, ports, URLs and apt repository names.
extension BlueprintRules {
    package static func isIPv4(_ s: String) -> Bool {
        let parts = s.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts.allSatisfy { p in
            !p.isEmpty && p.count <= 3 && p.allSatisfy { $0.isASCII && $0.isNumber } && Int(p)! <= 255
                && (p.count == 1 || p.first != "0")
        }
    }

    package static func isIPv6(_ s: String) -> Bool {
        guard s.contains(":"), s.allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "." }) else { return false }
        var addr = in6_addr()
        return inet_pton(AF_INET6, s, &addr) == 1
    }

    /// An address or a network: `192.0.2.7`, `192.0.2.0/24`, `2001:db8::/32`.
    package static func addressOrNetworkProblem(_ s: String) -> String? {
        let parts = s.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        let address = parts[0]
        let maxPrefix = isIPv4(address) ? 32 : isIPv6(address) ? 128 : nil
        guard let maxPrefix else {
            return "\"\(s)\" is not an IP address or network; give one such as \"192.0.2.0/24\", \"10.1.2.3\" or \"2001:db8::/32\""
        }
        if parts.count == 2 {
            guard let prefix = Int(parts[1]), parts[1].allSatisfy(\.isNumber), (0...maxPrefix).contains(prefix) else {
                return "\"\(s)\" has an invalid prefix length; use /0 to /\(maxPrefix)"
            }
        }
        return nil
    }

    /// A host name or an IP address (NTP servers).
    package static func hostProblem(_ s: String) -> String? {
        if isIPv4(s) || isIPv6(s) { return nil }
        if s.allSatisfy({ $0.isNumber || $0 == "." }) {
            return "\"\(s)\" is not a valid IPv4 address; give four numbers from 0 to 255 such as \"192.0.2.1\", or a host name"
        }
        return HostName.problem(s).map { _ in
            "\"\(s)\" is neither a host name nor an IP address; give one such as \"0.debian.pool.ntp.org\" or \"192.0.2.1\""
        }
    }

    /// firewalld-style `PORT:PROTO`, `FROM-TO:PROTO` or `SERVICE:PROTO` with an /etc/services name.
    package static func portProblem(_ spec: String) -> String? {
        let fix = "use PORT:PROTOCOL, FROM-TO:PROTOCOL or NAME:PROTOCOL with protocol tcp or udp, e.g. \"22:tcp\", \"8000-8080:udp\" or \"https:tcp\""
        let halves = spec.split(separator: ":", omittingEmptySubsequences: false)
        guard halves.count == 2, !halves[0].isEmpty else { return "\"\(spec)\" is not a port; \(fix)" }
        guard halves[1] == "tcp" || halves[1] == "udp" else {
            return "\"\(spec)\" has protocol \"\(halves[1])\"; \(fix)"
        }
        let port = halves[0]
        if port.first!.isLetter {
            let ok = port.allSatisfy { isAlnum($0) || "-_.".contains($0) } && port.count <= 32
            return ok ? nil : "\"\(spec)\" is not a port; \(fix)"
        }
        let range = port.split(separator: "-", omittingEmptySubsequences: false)
        let numbers = range.compactMap { p -> Int? in p.allSatisfy(\.isNumber) ? Int(p) : nil }
        guard (1...2).contains(range.count), numbers.count == range.count else { return "\"\(spec)\" is not a port; \(fix)" }
        guard numbers.allSatisfy({ (1...65535).contains($0) }) else {
            return "\"\(spec)\": use a port from 1 to 65535"
        }
        if numbers.count == 2, numbers[0] > numbers[1] {
            return "\"\(spec)\": the range starts after it ends; write \"\(numbers[1])-\(numbers[0]):\(halves[1])\""
        }
        return nil
    }

    /// firewalld service and zone names: letters, digits, `- _ . +`.
    package static func firewallNameProblem(_ name: String, kind: String, example: String) -> String? {
        let limit = kind == "zone" ? 17 : 64
        let ok = !name.isEmpty && name.count <= limit && isAlnum(name.first!)
            && name.allSatisfy { isAlnum($0) || "-_".contains($0) }
        return ok ? nil : "\"\(name)\" is not a firewall \(kind) name; use letters, digits, '-' and '_' (at most \(limit) characters), e.g. \"\(example)\""
    }

    /// An archive URI apt can use: `http://`, `https://` or `file:///`.
    package static func repositoryURLProblem(_ s: String) -> String? {
        let fix = "give the archive's base URL, e.g. \"https://deb.example.org/debian\" or \"file:///srv/repo\""
        guard !s.contains(where: { $0.isWhitespace || $0 == "\0" }), let url = URL(string: s), let scheme = url.scheme?.lowercased() else {
            return "\"\(s)\" is not a URL; \(fix)"
        }
        switch scheme {
        case "http", "https":
            guard let host = url.host, !host.isEmpty else { return "\"\(s)\" has no host; \(fix)" }
            return nil
        case "file":
            guard url.path.hasPrefix("/"), url.host == nil || url.host == "" || url.host == "localhost" else {
                return "\"\(s)\" is not a local file URL; write file:///absolute/path"
            }
            return nil
        default:
            return "\"\(s)\" uses \(scheme):, which Kiln cannot fetch from; \(fix)"
        }
    }

    /// The repository id names `/etc/apt/sources.list.d/ID.sources`: letters, digits, `_ - .`, not starting with '.'.
    /// `debian` is refused as `org.kiln.apt.sources` refuses it: that file is the image's own archive.
    package static func repositoryIDProblem(_ id: String) -> String? {
        if id == "debian" {
            return "\"debian\" is the image's own archive (/etc/apt/sources.list.d/debian.sources); choose another id, e.g. \"debian-extra\""
        }
        let ok = !id.isEmpty && id.count <= 100 && id.first != "." && id.first != "-"
            && id.allSatisfy { isAlnum($0) || "_-.".contains($0) }
        return ok ? nil : "\"\(id)\" is not a usable repository id (it names /etc/apt/sources.list.d/ID.sources); use letters, digits, '_', '-' and '.', e.g. \"example-stable\""
    }

    /// apt suites (`bookworm`, `bookworm-backports`, `stable/updates`) and flat-repository paths (`./`).
    package static func suiteProblem(_ s: String) -> String? {
        let ok = !s.isEmpty && s.allSatisfy { isAlnum($0) || "_-.+/~".contains($0) } && !s.hasPrefix("/")
        return ok ? nil : "\"\(s)\" is not an apt suite; give a codename or suite such as \"bookworm\" or \"bookworm-backports\" (or \"./\" for a flat repository)"
    }

    /// apt components: `main`, `contrib`, `non-free-firmware`.
    package static func componentProblem(_ s: String) -> String? {
        let ok = !s.isEmpty && s.allSatisfy { isAlnum($0) || "_-.+".contains($0) }
        return ok ? nil : "\"\(s)\" is not an apt component; give one such as \"main\" or \"non-free-firmware\""
    }
}
