import Foundation
import Pipeline

/// libFuzzer entry: bytes through the readers of files anomap reads back — results.json
/// (`--resume`, `merge`), report.json and the marks exported from a report (`label`).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRecords(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let bytes = Array(UnsafeRawBufferPointer(start: start, count: count))
    _ = try? MarksFile.parse(bytes)
    _ = try? JSONDecoder().decode([InspectionRecord].self, from: Data(bytes))
    _ = try? JSONDecoder().decode(ReportData.self, from: Data(bytes))
    return 0
}
