import Detection
import Foundation
import SafeFiles

/// One verdict a person gave an image in the triage report.
public struct Mark: Equatable, Sendable, Codable {
    /// The image's path.
    public var path: String
    /// "defect" or "false alarm".
    public var mark: String

    /// Creates a mark.
    public init(path: String, mark: String) {
        (self.path, self.mark) = (path, mark)
    }
}
