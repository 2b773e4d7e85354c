// anomap-fixtures: writes the synthetic demo/test dataset (MVTec layout) to a folder.
import Foundation
import SyntheticData

let arguments = CommandLine.arguments
guard arguments.count == 2 else {
    FileHandle.standardError.write(Data("usage: anomap-fixtures OUTPUT_DIR\n".utf8))
    exit(2)
}
do {
    let count = try SyntheticParts.write(to: arguments[1])
    print("wrote \(count) synthetic images and masks to \(arguments[1])")
} catch {
    FileHandle.standardError.write(Data("error: \(error)\n".utf8))
    exit(1)
}
