/// Errors of the pipeline that end a whole run.
public enum PipelineError: Error, CustomStringConvertible, Equatable {
    /// A missing or unusable input.
    case input(String)
    /// A model bundle that cannot be used.
    case model(String)
    /// An output that cannot be written.
    case output(String)

    /// One line for the user.
    public var description: String {
        switch self {
        case .input(let m), .model(let m), .output(let m): return m
        }
    }
}

/// Progress of a long operation: phase name, items done, items in this phase.
public typealias ProgressHandler = (_ phase: String, _ done: Int, _ total: Int) -> Void
