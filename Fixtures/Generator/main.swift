// anomap-fixtures: writes a synthetic dataset (MVTec layout) to a folder: the demo/test set,
// or with --small-defects the high-resolution small-defect benchmark (--rgb: tinted parts;
// --size WxH: another part size than 1024x2560; --counts: images per folder, default 30,20,12).
import Foundation
import SyntheticData

var arguments = Array(CommandLine.arguments.dropFirst())
var shape = SmallDefectParts.Shape()
let small = arguments.contains("--small-defects")
if arguments.contains("--rgb") { shape.channels = 3 }
var badOption = false
if let i = arguments.firstIndex(of: "--size") {
    let parts = i + 1 < arguments.count ? arguments[i + 1].split(separator: "x").compactMap { Int($0) } : []
    badOption = parts.count != 2 || !parts.allSatisfy { (256...20000).contains($0) }
    if !badOption { (shape.width, shape.height) = (parts[0], parts[1]) }
    arguments.removeSubrange(i...min(i + 1, arguments.count - 1))
}
var counts = [30, 20, 12]
if let i = arguments.firstIndex(of: "--counts") {
    let parts = i + 1 < arguments.count ? arguments[i + 1].split(separator: ",").compactMap { Int($0) } : []
    if parts.count == 3, parts.allSatisfy({ (0...1000).contains($0) }) { counts = parts } else { badOption = true }
    arguments.removeSubrange(i...min(i + 1, arguments.count - 1))
}
arguments.removeAll { $0 == "--small-defects" || $0 == "--rgb" }
guard arguments.count == 1, !badOption, small || (shape.channels == 1 && shape.width == 1024 && shape.height == 2560)
else {
    FileHandle.standardError.write(
        Data(
            "usage: anomap-fixtures [--small-defects [--rgb] [--size WxH] [--counts TRAIN,GOOD,PER_DEFECT]] OUTPUT_DIR\n"
                .utf8))
    exit(2)
}
do {
    let count =
        small
        ? try SmallDefectParts.write(
            to: arguments[0], shape: shape, train: counts[0], testGood: counts[1], testPerDefect: counts[2])
        : try SyntheticParts.write(to: arguments[0])
    print("wrote \(count) synthetic images and masks to \(arguments[0])")
} catch {
    FileHandle.standardError.write(Data("error: \(error)\n".utf8))
    exit(1)
}
