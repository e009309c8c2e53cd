import Foundation
import Manifest
import Testing

/// The IDs below were computed independently (Python: json.dumps(sort_keys=True,
/// separators=(",", ":"), ensure_ascii=False) + hashlib.sha256) from the rules
/// in docs/architecture.md §3. A change here means every cached tree is invalidated:
/// change the expectations only on purpose.
@Suite struct ContentIDTests {
    static func fixture() throws -> BuildManifest {
        let url = Bundle.module.url(forResource: "small", withExtension: "json", subdirectory: "Fixtures")!
        return try BuildManifest.decode(Data(contentsOf: url), file: "small.json")
    }

    @Test func pinnedStageAndPipelineIDs() throws {
        let ids = try ContentIDs(Self.fixture())
        #expect(
            ids.stages["os"] == [
                "cdbad87690ac7d441d8bcf8d29593a7de9af0d4cd2f0a66b4c8c87072036a54f",
                "3d3eeaf2ef1850da3900f28e83f2975d07ca2c7c93fb2ba3b289637a150c68a4",
            ])
        #expect(ids.pipelines["os"] == "3d3eeaf2ef1850da3900f28e83f2975d07ca2c7c93fb2ba3b289637a150c68a4")
        #expect(ids.pipelines["image"] == "2534f094d963c8e045a988d1607f773374535aa843853938d0f896104db072fc")
    }

    @Test func lateChangeKeepsEarlierIDsAndChangesEverythingDownstream() throws {
        let base = try Self.fixture()
        var changed = base
        changed.pipelines[0].stages[1].options["hostname"] = "other"
        let a = try ContentIDs(base), b = try ContentIDs(changed)
        #expect(a.stages["os"]![0] == b.stages["os"]![0], "the package installation checkpoint is reused")
        #expect(a.stages["os"]![1] != b.stages["os"]![1])
        #expect(a.pipelines["image"] != b.pipelines["image"], "a pipeline built from the changed tree changes too")
    }

    @Test func encodingRoundTripKeepsIDs() throws {
        let m = try Self.fixture()
        let again = try BuildManifest.decode(m.encoded(pretty: true), file: "again")
        #expect(try ContentIDs(again).pipelines == ContentIDs(m).pipelines)
        #expect(again == m)
    }

    @Test func canonicalEncoding() {
        let v: JSONValue = [
            "b": [1, .double(2.5), true, nil],
            "a": "é\n\"\\\u{01}",
            "A": ["z": .double(1e21), "y": .double(-0.0), "x": .double(3.0)],
        ]
        #expect(CanonicalJSON.encode(v) == #"{"A":{"x":3,"y":0,"z":1e+21},"a":"é\n\"\\\u0001","b":[1,2.5,true,null]}"#)
    }
}
