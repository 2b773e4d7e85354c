import NeuralNet
import Tensors
import XCTest

final class SafeTensorsTests: XCTestCase {
    func sample() -> SafeTensors {
        SafeTensors(
            tensors: [
                "b.bias": Tensor(shape: [3], storage: [1, -2, 3.5]),
                "a.weight": Tensor(shape: [2, 1, 2, 2], storage: (0..<8).map { Float($0) / 3 }),
            ],
            metadata: ["format_version": "1", "method": "test"])
    }

    func testRoundTripIsExactAndDeterministic() throws {
        let bytes = try sample().encoded()
        XCTAssertEqual(bytes, try sample().encoded())
        let back = try SafeTensors.decode(bytes)
        XCTAssertEqual(back.tensors, sample().tensors)
        XCTAssertEqual(back.metadata, sample().metadata)
        // Header length is little-endian u64 and the JSON is padded to 8 bytes.
        let headerLength = bytes[0..<8].enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        XCTAssertEqual(headerLength % 8, 0)
        XCTAssertEqual(bytes.count, 8 + headerLength + 4 * 11)
    }

    func testWriteIsAtomicAndReadable() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("st-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("m.safetensors").path
        try sample().write(to: path)
        XCTAssertEqual(try SafeTensors.read(contentsOf: path).tensors, sample().tensors)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["m.safetensors"])
    }

    func testMalformedFilesAreRefusedWithAReason() throws {
        let good = try sample().encoded()
        var cases: [(String, [UInt8])] = [("empty", []), ("short", [1, 2, 3])]
        for cut in [4, 8, 9, 20, good.count / 2, good.count - 1] {
            cases.append(("truncated at \(cut)", Array(good.prefix(cut))))
        }
        var huge = good
        huge[7] = 0x7F
        cases.append(("absurd header length", huge))
        var notJSON = good
        notJSON[8] = UInt8(ascii: "x")
        cases.append(("header not JSON", notJSON))
        func withHeader(_ json: String) -> [UInt8] {
            var h = Array(json.utf8)
            while h.count % 8 != 0 { h.append(0x20) }
            return (0..<8).map { UInt8((h.count >> (8 * $0)) & 0xFF) } + h + [UInt8](repeating: 0, count: 16)
        }
        cases.append(("offsets past the end", withHeader(#"{"t":{"dtype":"F32","shape":[4],"data_offsets":[0,400]}}"#)))
        cases.append(("size mismatch", withHeader(#"{"t":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}}"#)))
        cases.append(("wrong dtype", withHeader(#"{"t":{"dtype":"F16","shape":[8],"data_offsets":[0,16]}}"#)))
        cases.append(("negative dim", withHeader(#"{"t":{"dtype":"F32","shape":[-4],"data_offsets":[0,16]}}"#)))
        cases.append(
            (
                "overflowing shape",
                withHeader(#"{"t":{"dtype":"F32","shape":[2147483647,2147483647,2147483647],"data_offsets":[0,16]}}"#)
            ))
        cases.append(("reversed offsets", withHeader(#"{"t":{"dtype":"F32","shape":[4],"data_offsets":[16,0]}}"#)))
        cases.append(("not an object", withHeader(#"[1,2,3]"#)))
        cases.append(("bad metadata", withHeader(#"{"__metadata__":{"a":1}}"#)))
        for (name, bytes) in cases {
            XCTAssertThrowsError(try SafeTensors.decode(bytes, path: "case.safetensors"), name) { error in
                let text = String(describing: error)
                XCTAssertTrue(text.hasPrefix("case.safetensors: "), "\(name): \(text)")
            }
        }
    }

    func testMissingOrMisshapenTensorIsNamed() throws {
        let st = sample()
        XCTAssertThrowsError(try st.tensor("nope", path: "m")) {
            XCTAssertEqual(String(describing: $0), "m: missing tensor nope")
        }
        XCTAssertThrowsError(try st.tensor("b.bias", shape: [4], path: "m")) {
            XCTAssertTrue(String(describing: $0).contains("shape [3], expected [4]"))
        }
    }
}
