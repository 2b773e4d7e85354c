import Models
import Tensors

extension Component {
    /// Distance to the nearest patch of a coreset memory bank (PatchCore).
    public static let knn = MemoryBankComponent.name
}

/// `knn`: each patch's distance to the nearest entry of a memory bank of normal patches,
/// chosen from the training patches by a greedy k-center coreset (PatchCore, Roth et al.,
/// CVPR 2022). The one component that learns a marked false alarm without retraining.
public struct MemoryBankComponent: ScoringComponent {
    /// The name.
    public static let name = Component(declaring: "knn")
    /// For `--help`.
    public static let summary = "memory bank"
    /// A bank learns single images by adding their patches.
    public static let learnsFromMarks = true

    /// The bank.
    public let bank: PatchMemoryBank

    /// Wraps a bank.
    public init(bank: PatchMemoryBank) { self.bank = bank }

    /// A fitter that samples candidate patches from every training image, then takes the coreset.
    public static func fitter(settings: DetectorSettings, context: TrainingContext) -> any ComponentFitter {
        Fitter(settings: settings, trainingImages: context.trainingImages)
    }

    /// The bank from the `bank` tensor, (M, D').
    public static func load(_ bundle: BundleContents, settings: DetectorSettings) throws -> MemoryBankComponent {
        guard let entries = bundle.tensors["bank"], entries.shape.count == 2, entries.shape[0] > 0,
            entries.shape[1] == settings.embeddingDimension
        else {
            throw BundleError("bank tensor is missing or has the wrong shape")
        }
        return MemoryBankComponent(bank: PatchMemoryBank(entries: entries))
    }

    /// The bank entries.
    public var tensors: [String: Tensor] { ["bank": bank.entries] }

    /// Nearest-entry distances, (h * w).
    public func coarseMap(_ input: ComponentInput, shared: [Tensor], singleThreaded: Bool) -> [Float] {
        bank.nearestDistances(input.embeddings)
    }

    /// Adds every patch of the images whose distance to the bank exceeds `rawLimit`, image by
    /// image (a later image is compared with the patches already added). The bank may grow to
    /// twice `settings.bankSize`, so inference time stays bounded.
    public func learningNormal(
        from inputs: [ComponentInput], rawLimit: Float,
        settings: DetectorSettings
    ) throws -> (component: MemoryBankComponent, added: Int)? {
        let d = bank.dimension
        var entries = bank.entries.storage
        var current = bank
        var added = 0
        for input in inputs {
            let features = input.embeddings
            let p = features.height * features.width
            let distances = current.nearestDistances(features)
            for i in 0..<p where distances[i] > rawLimit {
                for k in 0..<d { entries.append(features.storage[k * p + i]) }
                added += 1
            }
            guard entries.count / d <= 2 * settings.bankSize else {
                throw PipelineError.model(
                    "the marks would grow the memory bank by more than \(settings.bankSize) patches: "
                        + "copy the false-alarm images into the good folder and run `anomap train` again")
            }
            current = PatchMemoryBank(entries: Tensor(shape: [entries.count / d, d], storage: entries))
        }
        return (MemoryBankComponent(bank: current), added)
    }

    /// Candidate patches: a seeded random share of every training image's patches, at most
    /// `settings.maxCandidates` in all (bounds the coreset's memory and time). Tiled, each tile
    /// counts as an image and, once that many are held, every further patch replaces a random
    /// one with the probability that keeps the sample uniform (reservoir sampling).
    struct Fitter: ComponentFitter {
        let settings: DetectorSettings
        let perImage: Int
        var candidates = [Float]()
        var seen = 0
        var phase: String { "coreset" }

        init(settings: DetectorSettings, trainingImages: Int) {
            self.settings = settings
            let grid = settings.featureGrid
            perImage = max(1, min(grid.height * grid.width, settings.maxCandidates / max(1, trainingImages)))
            candidates.reserveCapacity(perImage * trainingImages * settings.embeddingDimension)
        }

        mutating func observe(_ input: ComponentInput, generator: inout SeededGenerator) {
            let features = input.embeddings, d = features.channels
            let p = features.height * features.width
            var picks = Array(0..<p)
            picks.shuffle(using: &generator)
            for index in picks.prefix(perImage) {
                let slot = generator.reservoirSlot(
                    seen: seen, capacity: settings.isTiled ? settings.maxCandidates : .max)
                seen += 1
                guard let slot else { continue }
                if slot * d == candidates.count {
                    for k in 0..<d { candidates.append(features.storage[k * p + index]) }
                } else {
                    for k in 0..<d { candidates[slot * d + k] = features.storage[k * p + index] }
                }
            }
        }

        mutating func fit(
            _ data: TrainingData, generator: inout SeededGenerator,
            progress: ProgressHandler
        ) throws -> any ScoringComponent {
            progress("coreset", 0, 1)
            let d = settings.embeddingDimension
            let chosen = PatchMemoryBank.greedyCoreset(
                candidates, dimension: d, size: settings.bankSize,
                projectedDimension: settings.projectionDimension,
                generator: &generator)
            var entries = [Float]()
            entries.reserveCapacity(chosen.count * d)
            for index in chosen { entries.append(contentsOf: candidates[(index * d)..<((index + 1) * d)]) }
            candidates = []
            progress("coreset", 1, 1)
            return MemoryBankComponent(
                bank: PatchMemoryBank(entries: Tensor(shape: [chosen.count, d], storage: entries)))
        }
    }
}
