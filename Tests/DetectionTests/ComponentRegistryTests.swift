import Detection
import Foundation
import XCTest

/// The registry is the one list of components: names are unique, parse and decode only when
/// registered, and each name leads back to its own type.
final class ComponentRegistryTests: XCTestCase {
    func testNamesAreUniqueAndLeadBackToTheirTypes() throws {
        let names = ComponentRegistry.types.map { $0.name.rawValue }
        XCTAssertEqual(names, ["knn", "gaussian", "st", "variance", "ae", "gan"])
        XCTAssertEqual(Set(names).count, names.count)
        for type in ComponentRegistry.types {
            let parsed = try XCTUnwrap(Component(rawValue: type.name.rawValue))
            XCTAssertTrue(parsed.type == type, "\(parsed)")
            XCTAssertFalse(type.summary.isEmpty)
        }
        XCTAssertEqual(try Component.list("gaussian, st,ae"), [.gaussian, .st, .ae])
        XCTAssertEqual(ComponentRegistry.types.filter { $0.isLearned }.map { $0.name }, [.st, .variance, .ae, .gan])
        XCTAssertEqual(ComponentRegistry.types.filter { $0.learnsFromMarks }.map { $0.name }, [.knn])
    }

    func testUnknownNamesAreRefused() {
        XCTAssertNil(Component(rawValue: "dfm"))
        XCTAssertThrowsError(try Component.list("knn,dfm")) {
            XCTAssertTrue("\($0)".contains("knn, gaussian, st, variance, ae, gan"), "\($0)")
        }
        XCTAssertThrowsError(
            try JSONDecoder().decode(DetectorSettings.self, from: Data(#"{"components":["dfm"]}"#.utf8)))
        XCTAssertEqual(String(decoding: try JSONEncoder().encode([Component.st]), as: UTF8.self), #"["st"]"#)
    }
}
