import Foundation
import Manifest
import Testing

@Suite struct JSONParserTests {
    @Test func documentParsesToTheValuesWritten() throws {
        let text = #"""
            {"s": "a\"b\\c\/d\n\t\u00e9\ud83d\ude00", "i": -42, "big": 9007199254740993, "d": 0.5, "e": 1e3,
             "one": 1.0, "t": true, "f": false, "n": null, "a": [1, [], {}], "dup": 1, "dup": 2, "ü": "ü"}
            """#
        let v = try JSONValue.parse(Data(text.utf8))
        #expect(v["s"] == .string("a\"b\\c/d\n\té😀"))
        #expect(v["i"] == .int(-42))
        #expect(v["big"] == .int(9_007_199_254_740_993))  // exact, not rounded through Double
        #expect(v["d"] == .double(0.5))
        #expect(v["e"] == .int(1000))
        #expect(v["one"] == .int(1))
        #expect(v["t"] == .bool(true) && v["f"] == .bool(false) && v["n"] == .null)
        #expect(v["a"] == .array([.int(1), .array([]), .object([:])]))
        #expect(v["dup"] == .int(2))
        #expect(v["ü"] == .string("ü"))
    }

    @Test func parsedValuesHashAsFoundationReadsThem() throws {
        // The same content ID whether a manifest was read by this parser or written by Foundation.
        let doc: [String: Any] = ["hostname": "x", "size": 2_147_483_648, "ratio": 0.25, "list": ["a", 1, false]]
        let data = try JSONSerialization.data(withJSONObject: doc, options: [.sortedKeys])
        let v = try JSONValue.parse(data)
        #expect(CanonicalJSON.encode(v) == String(decoding: data, as: UTF8.self))
    }

    @Test(arguments: [
        ("", "line 1, column 1: unexpected end of the document; expected a value"),
        ("{\"a\": 1,}", "line 1, column 9: unexpected '}'; expected a key in quotes"),
        ("{\n  \"a\" 1\n}", "line 2, column 7: unexpected '1'; expected ':' after the key"),
        ("[1 2]", "line 1, column 4: unexpected '2'; expected ',' or ']'"),
        ("\"open", "line 1, column 1: a string that is never closed"),
        ("01", "line 1, column 1: a number with a leading zero"),
        ("{} x", "line 1, column 4: unexpected 'x' after the document"),
        ("\"\\ud800\"", "line 1, column 8: a lone high surrogate \\uD800"),
        ("tru", "line 1, column 1: unexpected 't'; expected a value"),
        ("1e999", "line 1, column 1: the number 1e999 is out of range"),
    ])
    func malformedDocumentsSayWhereAndWhat(text: String, message: String) {
        #expect(throws: JSONSyntaxError.self) { try JSONValue.parse(Data(text.utf8)) }
        do {
            _ = try JSONValue.parse(Data(text.utf8))
        } catch {
            #expect("\(error)" == message)
        }
    }

    @Test func deepNestingIsAnErrorNotACrash() {
        let text = String(repeating: "[", count: 100_000)
        #expect(throws: JSONSyntaxError.self) { try JSONValue.parse(Data(text.utf8)) }
    }
}
