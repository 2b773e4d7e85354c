import Foundation
import Imaging
import Models
import SafeFiles
import Tensors

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

/// Reads the marks exported from a report page (marks.csv or marks.json).
public enum MarksFile {
    /// The two marks the page gives.
    public static let kinds: Set<String> = ["defect", "false alarm"]

    /// The marks in a CSV (with a `path,mark` header, fields quoted as RFC 4180) or JSON file.
    public static func read(_ path: String) throws -> [Mark] {
        let bytes: [UInt8]
        do {
            bytes = try readFile(path, maxBytes: 64 << 20)
        } catch let error as FileError {
            throw PipelineError.input("\(path): cannot read marks (\(error.reason))")
        }
        do {
            return try parse(bytes)
        } catch let error as PipelineError {
            throw PipelineError.input("\(path): \(error.description)")
        }
    }

    /// Parses marks from CSV or JSON bytes.
    public static func parse(_ bytes: [UInt8]) throws -> [Mark] {
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw PipelineError.input("not a marks file (not UTF-8 text; export marks.csv or marks.json from a report)")
        }
        let trimmed = text.drop { $0.isWhitespace }
        let marks: [Mark]
        if trimmed.first == "[" {
            do {
                marks = try JSONDecoder().decode([Mark].self, from: Data(bytes))
            } catch {
                throw PipelineError.input("not a marks JSON file (an array of {path, mark}): \(error)")
            }
        } else {
            let rows = try csvRows(text)
            guard let header = rows.first, let p = header.firstIndex(of: "path"), let m = header.firstIndex(of: "mark") else {
                throw PipelineError.input("not a marks file: the first line must name the columns path and mark")
            }
            marks = try rows.dropFirst().enumerated().compactMap { n, row in
                if row == [""] { return nil }
                guard row.count > max(p, m) else { throw PipelineError.input("line \(n + 2): expected \(header.count) fields, found \(row.count)") }
                return Mark(path: row[p], mark: row[m])
            }
        }
        for (n, mark) in marks.enumerated() where !kinds.contains(mark.mark) || mark.path.isEmpty {
            throw PipelineError.input("mark \(n + 1): '\(mark.mark)' for '\(mark.path)' — expected a path and \"defect\" or \"false alarm\"")
        }
        return marks
    }

    /// Splits RFC 4180 CSV into rows of fields (quoted fields may hold commas, quotes and newlines).
    static func csvRows(_ text: String) throws -> [[String]] {
        var rows = [[String]](), row = [String](), field = "", quoted = false, atFieldStart = true
        // Characters, not scalars: "\r\n" is one Character.
        var characters = text.makeIterator()
        var pending: Character?
        while let c = pending ?? characters.next() {
            pending = nil
            if quoted {
                if c == "\"" {
                    if let next = characters.next() {
                        if next == "\"" { field.append("\"") } else { quoted = false; pending = next }
                    } else {
                        quoted = false
                    }
                } else {
                    field.append(c)
                }
                continue
            }
            switch c {
            case "\"" where atFieldStart:
                quoted = true
                atFieldStart = false
            case ",":
                row.append(field)
                field = ""
                atFieldStart = true
            case "\n", "\r\n":
                row.append(field)
                rows.append(row)
                (row, field, atFieldStart) = ([], "", true)
            case "\r":
                break
            default:
                field.append(c)
                atFieldStart = false
            }
        }
        if quoted { throw PipelineError.input("unterminated quoted field") }
        if !field.isEmpty || !row.isEmpty {
            row.append(field)
            rows.append(row)
        }
        return rows
    }
}

extension Detector {
    /// The components that can learn from single labelled images without retraining.
    public static let labellable: Set<Component> = [.knn]

    /// This detector with the patches of `images` (confirmed normal) added to its memory bank,
    /// so it stops flagging them: every patch whose distance to the bank reaches half the
    /// threshold becomes a bank entry. The bank
    /// may grow to twice `settings.bankSize` entries (so inference time stays bounded); calibration is kept. Fails with
    /// a clear message when the model has a component that learns only in training.
    public func learningNormal(from images: [Image]) throws -> (detector: Detector, added: Int) {
        let fixed = settings.components.filter { !Self.labellable.contains($0) }
        guard fixed.isEmpty, let bank, let index = settings.components.firstIndex(of: .knn) else {
            let names = fixed.map(\.rawValue).joined(separator: ", ")
            throw PipelineError.model("this model's \(names) \(fixed.count == 1 ? "component learns" : "components learn") only in training: "
                + "copy the false-alarm images into the good folder and run `anomap train` again "
                + "(a model trained with `--components knn` learns from marks without retraining)")
        }
        // A patch is learned when it reaches half the threshold on the normalized scale: the
        // image's map then stays below half the threshold everywhere (blurring only averages),
        // with a margin, while patches that already look normal are not duplicated.
        let normalization = componentNormalizations[index]
        let limit = normalization.normalLevel + 0.5 * max(threshold, 0) * (normalization.peakLevel - normalization.normalLevel)
        let d = bank.dimension
        var entries = bank.entries.storage
        var current = bank
        var added = 0
        for image in images {
            let features = Detector.embeddings(extractor.embed(settings.input(for: image)), positionWeight: settings.positionWeight)
            let p = features.height * features.width
            let distances = current.nearestDistances(features)
            for i in 0..<p where distances[i] > limit {
                for k in 0..<d { entries.append(features.storage[k * p + i]) }
                added += 1
            }
            guard entries.count / d <= 2 * settings.bankSize else {
                throw PipelineError.model("the marks would grow the memory bank by more than \(settings.bankSize) patches: "
                    + "copy the false-alarm images into the good folder and run `anomap train` again")
            }
            current = PatchMemoryBank(entries: Tensor(shape: [entries.count / d, d], storage: entries))
        }
        let detector = Detector(extractor: extractor, bank: current, gaussian: gaussian, students: students,
                                autoencoder: autoencoder, positional: positional, componentNormalizations: componentNormalizations,
                                settings: settings, normalization: normalization, scoreNormalization: scoreNormalization,
                                threshold: threshold, backboneSHA256: backboneSHA256)
        return (detector, added)
    }
}
