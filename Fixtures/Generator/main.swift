// anomap-fixtures: writes a synthetic dataset (MVTec layout) to a folder: the demo/test set,
// or with --small-defects the high-resolution small-defect benchmark (--rgb: tinted parts).
import Foundation
import SyntheticData

var arguments = Array(CommandLine.arguments.dropFirst())
let small = arguments.contains("--small-defects"), rgb = arguments.contains("--rgb")
arguments.removeAll { $0 == "--small-defects" || $0 == "--rgb" }
guard arguments.count == 1, small || !rgb else {
    FileHandle.standardError.write(Data("usage: anomap-fixtures [--small-defects [--rgb]] OUTPUT_DIR\n".utf8))
    exit(2)
}
do {
    let count =
        small
        ? try SmallDefectParts.write(to: arguments[0], shape: .init(channels: rgb ? 3 : 1))
        : try SyntheticParts.write(to: arguments[0])
    print("wrote \(count) synthetic images and masks to \(arguments[0])")
} catch {
    FileHandle.standardError.write(Data("error: \(error)\n".utf8))
    exit(1)
}
