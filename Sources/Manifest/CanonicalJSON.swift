import Crypto
import Foundation

/// Canonical JSON (RFC 8785 style): object keys sorted by code point, no
/// insignificant whitespace, numbers in shortest form. Content IDs hash this
/// encoding and nothing else.
public enum CanonicalJSON {
    public static func encode(_ value: JSONValue) -> String {
        var out = ""
        write(value, into: &out)
        return out
    }

    public static func sha256Hex(_ value: JSONValue) -> String {
        let digest = SHA256.hash(data: Data(encode(value).utf8))
        return Hex.encode(digest)
    }

    private static func write(_ value: JSONValue, into out: inout String) {
        switch value {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let i): out += String(i)
        case .double(let d): out += number(d)
        case .string(let s): string(s, into: &out)
        case .array(let a):
            out += "["
            for (i, v) in a.enumerated() {
                if i > 0 { out += "," }
                write(v, into: &out)
            }
            out += "]"
        case .object(let o):
            out += "{"
            let keys = o.keys.sorted { Array($0.unicodeScalars.map(\.value)).lexicographicallyPrecedes($1.unicodeScalars.map(\.value)) }
            for (i, k) in keys.enumerated() {
                if i > 0 { out += "," }
                string(k, into: &out)
                out += ":"
                write(o[k]!, into: &out)
            }
            out += "}"
        }
    }

    static func number(_ d: Double) -> String {
        if d == d.rounded(), abs(d) < 1e21 {
            if d == 0 { return "0" }
            if abs(d) < 9.007199254740992e15 { return String(Int64(d)) }
        }
        // Swift's description is the shortest representation that round-trips.
        var s = "\(d)"
        if s.hasSuffix(".0") { s.removeLast(2) }
        return s.replacingOccurrences(of: "e+", with: "e+")
    }

    private static func string(_ s: String, into out: inout String) {
        out += "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    out += String(format: "\\u%04x", scalar.value)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        out += "\""
    }
}
