import Foundation

/// Checks identifiers that end up in on-disk structures.
package enum Identifier {
    /// A UUID in canonical lower-case form.
    package static func uuid(_ value: String, field: String) throws -> String {
        guard UUID(uuidString: value) != nil else {
            throw AssemblyError.badIdentifier(field: field, value: value, expected: "a UUID (8-4-4-4-12 hex digits)")
        }
        return value.lowercased()
    }

    /// Exactly `digits` hexadecimal digits, upper-cased.
    package static func hex(_ value: String, digits: Int, field: String) throws -> String {
        guard value.count == digits, value.allSatisfy(\.isHexDigit) else {
            throw AssemblyError.badIdentifier(field: field, value: value, expected: "\(digits) hexadecimal digits")
        }
        return value.uppercased()
    }
}
