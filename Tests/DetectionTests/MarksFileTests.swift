import Batch
import Detection
import XCTest

/// The marks file reader: the page's CSV export (RFC 4180 quoting) and its JSON export.
final class MarksFileTests: XCTestCase {
    func testQuotedCSVFieldsAndLineEndings() throws {
        let csv =
            "path,mark,score,verdict\r\n\"/a/b, c.png\",false alarm,1.5,anomalous\r\n\"/x/\"\"q\"\"\nline.png\",defect,,error\n/plain.png,false alarm,0.2,normal"
        XCTAssertEqual(
            try MarksFile.parse(Array(csv.utf8)),
            [
                Mark(path: "/a/b, c.png", mark: "false alarm"),
                Mark(path: "/x/\"q\"\nline.png", mark: "defect"),
                Mark(path: "/plain.png", mark: "false alarm"),
            ])
        // Columns are found by name, in any order.
        XCTAssertEqual(
            try MarksFile.parse(Array("mark,path\ndefect,/z.png\n".utf8)), [Mark(path: "/z.png", mark: "defect")])
    }

    func testJSONExport() throws {
        let json = #"[{"path": "/a.png", "mark": "false alarm", "score": 2.5, "verdict": "anomalous"}]"#
        XCTAssertEqual(try MarksFile.parse(Array(json.utf8)), [Mark(path: "/a.png", mark: "false alarm")])
    }

    func testMalformedFilesAreRefusedWithAReason() {
        let cases: [(String, String)] = [
            ("name,verdict\nx,y\n", "first line must name the columns"),
            ("path,mark\n/a.png,maybe\n", "expected a path and"),
            ("path,mark\n/a.png\n", "line 2: expected 2 fields"),
            ("path,mark\n\"/a.png,defect\n", "unterminated quoted field"),
            ("[{\"path\": 3}]", "not a marks JSON file"),
        ]
        for (text, reason) in cases {
            XCTAssertThrowsError(try MarksFile.parse(Array(text.utf8)), text) { error in
                XCTAssertTrue(String(describing: error).contains(reason), "\(text): \(error)")
            }
        }
        XCTAssertThrowsError(try MarksFile.parse([0xff, 0xfe, 0x00]))
    }
}
