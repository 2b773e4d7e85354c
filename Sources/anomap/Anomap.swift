import ArgumentParser
import Foundation
import Tensors

/// The anomap command-line tool: visual anomaly localization on a CPU.
@main
struct Anomap: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "anomap",
        abstract: "Visual anomaly localization: learn what good products look like, then find defects pixel by pixel.",
        version: anomapVersion,
        subcommands: [
            Train.self, Inspect.self, Serve.self, Eval.self, EvalShift.self, Label.self, Merge.self, Classify.self,
        ]
    )

    /// Runs the command line; usage errors exit with 2 (argument-parser's default is 64) so
    /// scripts see one code for "the whole run could not start".
    static func main() {
        BLASKernels.restartWithBetterKernels()
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            if exitCode(for: error) == .validationFailure {
                printError(fullMessage(for: error))
                Foundation.exit(2)
            }
            exit(withError: error)
        }
    }
}

/// The tool's version.
let anomapVersion = "0.1.0"
