import ArgumentParser
import Batch
import Detection
import Foundation
import Imaging
import Models
import Tensors

/// `anomap classify`: ImageNet top-5 for photos, a check that the backbone works.
struct Classify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the top ImageNet classes of images (a check of the pretrained backbone).")

    @Argument(help: ArgumentHelp("PNG or JPEG files.", valueName: "image"))
    var images: [String]

    @Option(name: .long, help: "How many classes to print per image.")
    var top = 5

    @Option(name: .long, help: "Threads for the numeric kernels.")
    var threads = 2

    @OptionGroup var backbone: BackboneOptions

    func validate() throws {
        if images.isEmpty { throw ValidationError("give at least one image") }
        if !(1...1000).contains(top) { throw ValidationError("--top must be in 1...1000") }
        if threads < 1 { throw ValidationError("--threads must be at least 1") }
    }

    func run() throws {
        setComputeThreads(threads)
        let network: EfficientNetLite0
        do {
            network = try backbone.load()
        } catch {
            printError("error: \(error)")
            throw ExitCode(2)
        }
        var failures = 0
        for path in images {
            do {
                let image = try ImageCodec.read(contentsOf: path)
                let predictions = classify(image, with: network, top: top)
                print(path)
                for p in predictions {
                    let name = p.name.padding(toLength: max(30, p.name.count), withPad: " ", startingAt: 0)
                    print(
                        "  " + String(p.index).leftPadded(4) + "  " + name + " "
                            + String(format: "%6.2f%%", 100 * p.probability))
                }
            } catch {
                failures += 1
                printError("error: \(error)")
            }
        }
        if failures > 0 { throw ExitCode(1) }
    }
}
