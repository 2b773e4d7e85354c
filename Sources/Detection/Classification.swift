import Foundation
import Imaging
import Models
import Tensors

/// One ImageNet prediction.
public struct ClassPrediction: Equatable, Sendable {
    /// Class index 0..<1000.
    public var index: Int
    /// Class name.
    public var name: String
    /// Softmax probability.
    public var probability: Float
}

/// Top-k ImageNet classes of an image with EfficientNet-Lite0.
public func classify(_ image: Image, with network: EfficientNetLite0, top k: Int = 5) -> [ClassPrediction] {
    let logits = network.logits(Preprocessing.lite0Input(Preprocessing.classificationCrop(image))).storage
    let peak = logits.max() ?? 0
    let exps = logits.map { Float(exp(Double($0 - peak))) }
    let total = exps.reduce(0, +)
    let order = logits.indices.sorted { logits[$0] != logits[$1] ? logits[$0] > logits[$1] : $0 < $1 }
    return order.prefix(k).map {
        ClassPrediction(index: $0, name: imageNetClassNames[$0], probability: exps[$0] / total)
    }
}
