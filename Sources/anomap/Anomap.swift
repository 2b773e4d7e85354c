import ArgumentParser

/// The anomap command-line tool: visual anomaly localization on a CPU.
@main
struct Anomap: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "anomap",
        abstract: "Visual anomaly localization: learn what good products look like, then find defects pixel by pixel.",
        version: anomapVersion,
        subcommands: [Train.self, Inspect.self, Eval.self, Classify.self]
    )
}

/// The tool's version.
let anomapVersion = "0.1.0"
