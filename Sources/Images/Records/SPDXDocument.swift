import Foundation
import Manifest

/// An SPDX 2.3 document (JSON) for one image: the image as a package that
/// CONTAINS every `.deb` it was built from, each with its version, sha256,
/// download location, source package and a purl
/// (`pkg:deb/debian/NAME@VERSION?arch=ARCH&distro=DISTRO`).
package enum SPDXDocument {
    /// The document as canonical JSON (sorted keys).
    /// - namespace: a URI unique to this image (the compose's ID and the image's place in it).
    package static func json(
        imageName: String, distro: String, packages: [PackageRecord], namespace: String, created: Date, tool: String
    ) -> Data {
        var elements: [[String: Any]] = [
            [
                "SPDXID": "SPDXRef-Image", "name": imageName, "downloadLocation": "NOASSERTION", "filesAnalyzed": false,
                "primaryPackagePurpose": "OPERATING-SYSTEM", "licenseConcluded": "NOASSERTION", "licenseDeclared": "NOASSERTION",
                "copyrightText": "NOASSERTION", "supplier": "NOASSERTION",
            ]
        ]
        var relationships: [[String: Any]] = [
            ["spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES", "relatedSpdxElement": "SPDXRef-Image"]
        ]
        var used = Set<String>()
        for p in packages {
            let id = uniqueID("SPDXRef-deb-\(p.name)-\(p.architecture)", in: &used)
            elements.append([
                "SPDXID": id, "name": p.name, "versionInfo": p.version, "downloadLocation": p.url, "filesAnalyzed": false,
                "checksums": [["algorithm": "SHA256", "checksumValue": p.sha256]],
                "licenseConcluded": "NOASSERTION", "licenseDeclared": "NOASSERTION", "copyrightText": "NOASSERTION",
                "supplier": "Organization: Debian", "sourceInfo": "built from the Debian source package \(p.source)",
                "externalRefs": [
                    [
                        "referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                        "referenceLocator": purl(p, distro: distro),
                    ]
                ],
            ])
            relationships.append(["spdxElementId": "SPDXRef-Image", "relationshipType": "CONTAINS", "relatedSpdxElement": id])
        }
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        let document: [String: Any] = [
            "spdxVersion": "SPDX-2.3", "dataLicense": "CC0-1.0", "SPDXID": "SPDXRef-DOCUMENT", "name": imageName,
            "documentNamespace": namespace,
            "creationInfo": ["created": formatter.string(from: created), "creators": ["Tool: \(tool)"]],
            "packages": elements, "relationships": relationships,
        ]
        return (try? JSONSerialization.data(withJSONObject: document, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
    }

    /// `pkg:deb/debian/NAME@VERSION?arch=ARCH&distro=DISTRO`, each part percent-encoded as purl asks.
    package static func purl(_ p: PackageRecord, distro: String) -> String {
        "pkg:deb/debian/\(encode(p.name))@\(encode(p.version))?arch=\(encode(p.architecture))&distro=\(encode(distro))"
    }

    /// Percent-encodes all but purl's unreserved characters.
    static func encode(_ s: String) -> String {
        var out = ""
        for byte in s.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "."), UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                out += "%" + Hex.encode([byte], uppercase: true)
            }
        }
        return out
    }

    /// An SPDX identifier (letters, digits, `.` and `-`) from `base`, unique in `used`.
    static func uniqueID(_ base: String, in used: inout Set<String>) -> String {
        let cleaned = String(base.map { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "." || $0 == "-") ? $0 : "-" })
        var id = cleaned, n = 1
        while used.contains(id) {
            n += 1
            id = "\(cleaned)-\(n)"
        }
        used.insert(id)
        return id
    }
}
