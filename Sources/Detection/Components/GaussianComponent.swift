import Models
import Tensors

extension Component {
    /// Mahalanobis distance to a Gaussian of normal patches at the same position (PaDiM).
    public static let gaussian = GaussianComponent.name
}

/// `gaussian`: each patch's Mahalanobis distance to a Gaussian fitted to the training patches
/// at the same grid position, over a seeded random subset of the teacher channels (PaDiM,
/// Defard et al., ICPR 2020 workshops).
public struct GaussianComponent: ScoringComponent {
    /// The name.
    public static let name = Component(declaring: "gaussian")
    /// For `--help`.
    public static let summary = "per-position Gaussian"

    /// The per-position Gaussians.
    public let gaussian: PositionalGaussian

    /// Wraps fitted Gaussians.
    public init(gaussian: PositionalGaussian) { self.gaussian = gaussian }

    /// One Gaussian per grid position needs every image on the same grid.
    public static func refusal(for settings: DetectorSettings) -> String? {
        settings.fixedSizeRefusal(name)
    }

    /// A fitter that accumulates each position's mean and covariance in one pass.
    public static func fitter(settings: DetectorSettings, context: TrainingContext) -> any ComponentFitter {
        let count = min(settings.gaussianChannels, settings.featureDimension)
        let channels = Array(context.channelPermutation.prefix(count)).sorted()
        let grid = settings.featureGrid
        return Fitter(
            accumulator: PositionalGaussianAccumulator(channels: channels, height: grid.height, width: grid.width))
    }

    /// The Gaussians from `gaussian.channels` (d), `gaussian.mean` (h * w, d) and
    /// `gaussian.precision` (h * w, d (d + 1) / 2, packed upper triangles).
    public static func load(_ bundle: BundleContents, settings: DetectorSettings) throws -> GaussianComponent {
        let (h, w) = settings.featureGrid
        guard let channels = bundle.tensors["gaussian.channels"], let mean = bundle.tensors["gaussian.mean"],
            let precision = bundle.tensors["gaussian.precision"]
        else { throw BundleError("Gaussian tensors are missing") }
        let list = channels.storage.map { Int($0) }
        let d = list.count
        guard d > 0, list.allSatisfy({ (0..<settings.featureDimension).contains($0) }),
            mean.shape == [h * w, d], precision.shape == [h * w, PositionalGaussian.packedCount(d)]
        else {
            throw BundleError("Gaussian tensors have the wrong shape")
        }
        return GaussianComponent(
            gaussian: PositionalGaussian(
                channels: list, mean: mean, precision: precision,
                height: h, width: w))
    }

    /// Channels, means and packed precisions.
    public var tensors: [String: Tensor] {
        [
            "gaussian.mean": gaussian.mean, "gaussian.precision": gaussian.precision,
            "gaussian.channels": Tensor(shape: [gaussian.channels.count], storage: gaussian.channels.map { Float($0) }),
        ]
    }

    /// The grid in bands of positions, run beside the other components' work.
    public var sharedWork: (any SharedWork)? { Bands(gaussian: gaussian) }

    /// Mahalanobis distances, (h * w): the bands' outputs in order.
    public func coarseMap(_ input: ComponentInput, shared: [Tensor], singleThreaded: Bool) -> [Float] {
        shared.flatMap(\.storage)
    }

    /// The distances of a band of grid positions per piece. Reading each position's precision
    /// (47 MB an image at 256x256) makes the Gaussian the largest single job of an image, and
    /// whole it kept one core busy for 2.5 ms after the other had finished (measured with
    /// `inspect --inspections 1`); in bands the two cores share it.
    struct Bands: SharedWork {
        let gaussian: PositionalGaussian
        var key: String { "gaussian" }
        var pieces: Int { min(8, max(1, gaussian.height * gaussian.width)) }

        func piece(_ index: Int, of input: ComponentInput, singleThreaded: Bool) -> Tensor {
            let p = gaussian.height * gaussian.width
            let band = (p * index / pieces)..<(p * (index + 1) / pieces)
            return Tensor(shape: [band.count], storage: gaussian.distances(input.embeddings, positions: band))
        }
    }

    struct Fitter: ComponentFitter {
        var accumulator: PositionalGaussianAccumulator
        var phase: String { "gaussian" }

        mutating func observe(_ input: ComponentInput, generator: inout SeededGenerator) {
            accumulator.add(input.embeddings)
        }

        mutating func fit(
            _ data: TrainingData, generator: inout SeededGenerator,
            progress: ProgressHandler
        ) throws -> any ScoringComponent {
            GaussianComponent(gaussian: accumulator.finish())
        }
    }
}
