import Batch
import Detection
import Foundation
import FuzzSupport

/// libFuzzer entry: bytes through the readers of files anomap reads back — results.json
/// (`--resume`, `merge`), report.json and the marks exported from a report (`label`).
let fuzzRecords: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt = { data, count in
    let bytes = fuzzBytes(data, count)
    _ = try? MarksFile.parse(bytes)
    _ = try? JSONDecoder().decode([InspectionRecord].self, from: Data(bytes))
    _ = try? JSONDecoder().decode(ReportData.self, from: Data(bytes))
    return 0
}

/// The executable's entry point (see FuzzSupport).
@_cdecl("FuzzRecords_main")
public func entry(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv, fuzzRecords)
}
