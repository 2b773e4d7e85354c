import Foundation
import Imaging
import Models
import Tensors

/// Turning decoded images into network input.
public enum Preprocessing {
    /// The image as a normalized (1, 3, H, W) tensor for EfficientNet-Lite0; gray is replicated.
    public static func lite0Input(_ image: Image) -> Tensor {
        let rgb = image.rgb()
        let hw = rgb.width * rgb.height
        return Tensor(shape: [1, 3, rgb.height, rgb.width]) { out in
            rgb.pixels.withUnsafeBufferPointer { src in
                for i in 0..<hw {
                    for c in 0..<3 { out[c * hw + i] = EfficientNetLite0.normalize(Float(src[3 * i + c])) }
                }
            }
        }
    }

    /// The image resized to `width` x `height` (box filter when shrinking, bilinear when
    /// enlarging, per axis) as a normalized (1, 3, height, width) tensor, without rounding
    /// back to 8 bits in between.
    public static func lite0Input(_ image: Image, width: Int, height: Int) -> Tensor {
        // Gray is resized as one plane and replicated: the three identical planes `rgb()` would
        // give, value for value, at a third of the work (4% of `eval`'s profile on a gray set).
        let source = image.channels <= 2 ? image.gray() : image.rgb()
        let planes = resizePlanes(
            source.planes(), channels: source.channels, width: source.width, height: source.height,
            toWidth: width, toHeight: height, method: .area, threads: computeThreads
        ).map { EfficientNetLite0.normalize($0) }
        return Tensor(shape: [1, 3, height, width], storage: source.channels == 1 ? planes + planes + planes : planes)
    }

    /// Stacks equally sized (1, C, H, W) tensors into (N, C, H, W).
    public static func batch(_ items: [Tensor]) -> Tensor {
        precondition(!items.isEmpty && items.allSatisfy { $0.shape == items[0].shape }, "batch items differ in shape")
        var shape = items[0].shape
        shape[0] = items.count
        return Tensor(shape: shape, storage: items.flatMap(\.storage))
    }

    /// ImageNet evaluation crop: shorter side resized to `size` (box filter when shrinking),
    /// then the centred `size` x `size` square.
    public static func classificationCrop(_ image: Image, size: Int = 224) -> Image {
        let scale = Double(size) / Double(min(image.width, image.height))
        let w = max(size, Int((Double(image.width) * scale).rounded()))
        let h = max(size, Int((Double(image.height) * scale).rounded()))
        return image.rgb().resized(width: w, height: h, method: .area).centerCropped(width: size, height: size)
    }
}
