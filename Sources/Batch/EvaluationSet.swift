import Detection
import Foundation
import Imaging
import Metrics

/// A labelled test set: good images, defect images by type, optional ground-truth masks.
public struct EvaluationSet: Sendable {
    /// One test image.
    public struct Item: Sendable {
        /// Image file.
        public var path: String
        /// "good" or the defect type.
        public var type: String
        /// Ground-truth mask file, if any (defect images only).
        public var mask: String?
    }

    /// Training images (good), when the layout has them.
    public var trainingImages: [String]
    /// Test images.
    public var items: [Item]

    /// Reads the MVTec AD layout: `train/good`, `test/<type>`, `ground_truth/<type>/<stem>_mask.png`.
    public static func mvtec(_ root: String) throws -> EvaluationSet {
        let fm = FileManager.default
        var isFolder: ObjCBool = false
        guard fm.fileExists(atPath: root, isDirectory: &isFolder) else {
            throw PipelineError.input("\(root): no such folder")
        }
        guard isFolder.boolValue else {
            throw PipelineError.input("\(root): not a folder (give the dataset's root folder)")
        }
        let test = (root as NSString).appendingPathComponent("test")
        guard let types = try? fm.contentsOfDirectory(atPath: test) else {
            throw PipelineError.input(
                "\(root): not an MVTec-style dataset (no test/ folder); use --good and --defects for a plain folder layout"
            )
        }
        let trainDir = (root as NSString).appendingPathComponent("train/good")
        let training = fm.fileExists(atPath: trainDir) ? try ImageFolder.images(in: [trainDir]) : []
        var items = [Item]()
        for type in types.sorted() {
            let dir = (test as NSString).appendingPathComponent(type)
            for path in try ImageFolder.images(in: [dir]) {
                var mask: String?
                if type != "good" {
                    let stem = ((path as NSString).lastPathComponent as NSString).deletingPathExtension
                    let candidate = (root as NSString).appendingPathComponent("ground_truth/\(type)/\(stem)_mask.png")
                    if fm.fileExists(atPath: candidate) { mask = candidate }
                }
                items.append(Item(path: path, type: type, mask: mask))
            }
        }
        return EvaluationSet(trainingImages: training, items: items)
    }

    /// A plain layout: a folder of good images, a folder of defect images, an optional mask
    /// folder with `<stem>_mask.png` or `<stem>.png` per defect image.
    public static func folders(good: String, defects: String, masks: String?) throws -> EvaluationSet {
        var items = try ImageFolder.images(in: [good]).map { Item(path: $0, type: "good", mask: nil) }
        for path in try ImageFolder.images(in: [defects]) {
            var mask: String?
            if let masks {
                let stem = ((path as NSString).lastPathComponent as NSString).deletingPathExtension
                for name in ["\(stem)_mask.png", "\(stem).png"] {
                    let candidate = (masks as NSString).appendingPathComponent(name)
                    if FileManager.default.fileExists(atPath: candidate) { mask = candidate; break }
                }
            }
            items.append(Item(path: path, type: "defect", mask: mask))
        }
        return EvaluationSet(trainingImages: [], items: items)
    }
}
