import Detection
import Dispatch
import Foundation
import Imaging

/// One image of a batch and where its outputs go.
public struct BatchInput: Sendable, Equatable {
    /// Input file as found.
    public var path: String
    /// Output stem relative to the output folder (mirrors the input tree).
    public var stem: String

    /// Creates an input.
    public init(path: String, stem: String) {
        (self.path, self.stem) = (path, stem)
    }

    /// The images under `paths` (files or folders, recursively). Outputs mirror each input below
    /// its own name (a folder "good" -> out/good/...), and a stem that two inputs would share gets
    /// a numeric suffix instead of being overwritten.
    public static func collect(_ paths: [String]) throws -> [BatchInput] {
        var inputs = [BatchInput](), stems = UniqueStems()
        for p in paths {
            let parent = InspectionWriter.parent(of: InspectionWriter.lexicallyNormalized(p))
            for file in try ImageFolder.images(in: [p]) {
                let stem = stems.claim(InspectionWriter.relativeStem(for: file, under: parent))
                inputs.append(BatchInput(path: file, stem: stem))
            }
        }
        return inputs
    }

    /// Share `index` (0-based) of `count`: round-robin over the inputs sorted by path, so shards
    /// are balanced, deterministic, and every image lands in exactly one.
    public static func shard(_ inputs: [BatchInput], index: Int, count: Int) -> [BatchInput] {
        inputs.sorted { $0.path < $1.path }.enumerated().filter { $0.offset % count == index }.map(\.element)
    }
}

/// Output stems in use: a stem that two inputs would share gets a numeric suffix (`a.png` and
/// `a.jpg` give `a` and `a-2`) instead of one overwriting the other's outputs.
struct UniqueStems {
    private var taken = Set<String>()

    /// `stem`, or the first free `stem-2`, `stem-3`, ...; taken from now on.
    mutating func claim(_ stem: String) -> String {
        var unique = stem
        var k = 2
        while taken.contains(unique) {
            unique = "\(stem)-\(k)"
            k += 1
        }
        taken.insert(unique)
        return unique
    }

    /// Gives back a claimed stem.
    mutating func release(_ stem: String) { taken.remove(stem) }
}
