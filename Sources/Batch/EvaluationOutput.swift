import Detection
import Foundation
import Metrics
import SafeFiles

/// metrics.json, the printed table and the SVG plots of `anomap eval`.
public enum EvaluationOutput {
    /// Writes metrics.json and the plots (`writePlots`) into `dir`, each atomically.
    public static func write(_ report: EvaluationReport, trainSeconds: Double?, to dir: String) throws {
        struct File: Encodable {
            var threshold: Double
            var overall: GroupMetrics
            var per_type: [String: GroupMetrics]
            var ms_per_image: Double
            var train_seconds: Double?
            var errors: [String]
            var scores: [ScoredImage]
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let json = try encoder.encode(
            File(
                threshold: report.threshold, overall: report.overall, per_type: report.per_type,
                ms_per_image: report.ms_per_image, train_seconds: trainSeconds,
                errors: report.errors, scores: report.scores))
        do {
            try writeFileAtomically(Array(json), to: (dir as NSString).appendingPathComponent("metrics.json"))
        } catch {
            throw PipelineError.output("\(error)")
        }
        _ = try writePlots(report, to: dir)
    }

    /// Writes roc.svg, pr.svg and scores.svg into `dir`, each atomically; returns their names.
    public static func writePlots(_ report: EvaluationReport, to dir: String) throws -> [String] {
        func save(_ name: String, _ bytes: [UInt8]) throws {
            do {
                try writeFileAtomically(bytes, to: (dir as NSString).appendingPathComponent(name))
            } catch {
                throw PipelineError.output("\(error)")
            }
        }
        let scores = report.scores.map(\.score), labels = report.scores.map { $0.type != "good" }
        try save(
            "roc.svg",
            Array(
                curveSVG(
                    title: "ROC (image level)", x: "false positive rate", y: "true positive rate",
                    points: rocCurve(scores: scores, labels: labels).map { ($0.fpr, $0.tpr) },
                    diagonal: true
                ).utf8))
        try save(
            "pr.svg",
            Array(
                curveSVG(
                    title: "Precision-recall (image level)", x: "recall", y: "precision",
                    points: precisionRecallCurve(scores: scores, labels: labels).map { ($0.recall, $0.precision) },
                    diagonal: false
                ).utf8))
        try save("scores.svg", Array(distributionSVG(report).utf8))
        return ["roc.svg", "pr.svg", "scores.svg"]
    }

    /// The per-type table printed by `anomap eval`.
    public static func table(_ report: EvaluationReport, trainSeconds: Double?) -> String {
        func f(_ v: Double?) -> String { v.map { String(format: "%.3f", $0) } ?? "  -  " }
        var lines = ["type          images  img-AUROC  px-AUROC  AUPRO@0.3  F1-max    AP"]
        func row(_ name: String, _ g: GroupMetrics) {
            lines.append(
                name.padding(toLength: 13, withPad: " ", startingAt: 0) + String(format: " %6d", g.images)
                    + "    " + f(g.image_auroc) + "     " + f(g.pixel_auroc) + "     " + f(g.aupro)
                    + "     " + f(g.f1_max) + "  " + f(g.average_precision))
        }
        for (name, g) in report.per_type.sorted(by: { $0.key < $1.key }) { row(name, g) }
        row("overall", report.overall)
        lines.append(
            "(a type's row scores its images together with the good ones; pixel metrics use the ground-truth masks)")
        let o = report.overall
        lines.append(
            String(
                format:
                    "at threshold %.3f (normalized: 0 = median normal pixel, 1 = peak of held-out good images): precision %@, recall %@, F1 %@ (TP %d, FP %d, TN %d, FN %d)",
                report.threshold, f(o.precision), f(o.recall), f(o.f1), o.true_positives ?? 0,
                o.false_positives ?? 0, o.true_negatives ?? 0, o.false_negatives ?? 0))
        var timing = String(format: "inference %.1f ms/image (decode to map, median)", report.ms_per_image)
        if let trainSeconds { timing += String(format: "; training %.1f s", trainSeconds) }
        lines.append(timing)
        return lines.joined(separator: "\n")
    }

    static let size = (w: 420.0, h: 360.0, margin: 50.0)

    static func frame(_ title: String, x: String, y: String) -> String {
        let (w, h, m) = size
        var s =
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(w))\" height=\"\(Int(h))\" font-family=\"sans-serif\" font-size=\"12\">"
        s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>"
        s += "<text x=\"\(w / 2)\" y=\"20\" text-anchor=\"middle\" font-size=\"14\">\(escape(title))</text>"
        s +=
            "<rect x=\"\(m)\" y=\"\(m - 20)\" width=\"\(w - 1.5 * m)\" height=\"\(h - 1.5 * m - 10)\" fill=\"none\" stroke=\"#444\"/>"
        s += "<text x=\"\(w / 2)\" y=\"\(h - 8)\" text-anchor=\"middle\">\(escape(x))</text>"
        s +=
            "<text x=\"14\" y=\"\(h / 2)\" text-anchor=\"middle\" transform=\"rotate(-90 14 \(h / 2))\">\(escape(y))</text>"
        return s
    }

    static func curveSVG(title: String, x: String, y: String, points: [(Double, Double)], diagonal: Bool) -> String {
        let (w, h, m) = size
        let pw = w - 1.5 * m, ph = h - 1.5 * m - 10
        func px(_ v: Double) -> Double { m + v * pw }
        func py(_ v: Double) -> Double { m - 20 + (1 - v) * ph }
        var s = frame(title, x: x, y: y)
        for t in [0.0, 0.5, 1.0] {
            s += "<text x=\"\(px(t))\" y=\"\(py(0) + 14)\" text-anchor=\"middle\">\(t)</text>"
            s += "<text x=\"\(m - 6)\" y=\"\(py(t) + 4)\" text-anchor=\"end\">\(t)</text>"
        }
        if diagonal {
            s +=
                "<line x1=\"\(px(0))\" y1=\"\(py(0))\" x2=\"\(px(1))\" y2=\"\(py(1))\" stroke=\"#bbb\" stroke-dasharray=\"4\"/>"
        }
        let path = points.map { String(format: "%.1f,%.1f", px($0.0), py($0.1)) }.joined(separator: " ")
        s += "<polyline points=\"\(path)\" fill=\"none\" stroke=\"#c0392b\" stroke-width=\"2\"/></svg>\n"
        return s
    }

    static func distributionSVG(_ report: EvaluationReport) -> String {
        let (w, h, m) = size
        let types = ["good"] + Array(Set(report.scores.map(\.type)).subtracting(["good"])).sorted()
        let values = report.scores.map(\.score) + [report.threshold]
        let lo = values.min() ?? 0, hi = max((values.max() ?? 1), lo + 1e-6)
        let pw = w - 1.5 * m, ph = h - 1.5 * m - 10
        func py(_ v: Double) -> Double { m - 20 + (1 - (v - lo) / (hi - lo)) * ph }
        var s = frame("Image scores by type (line: threshold)", x: "type", y: "normalized score")
        for (k, type) in types.enumerated() {
            let cx = m + (Double(k) + 0.5) * pw / Double(types.count)
            s += "<text x=\"\(cx)\" y=\"\(py(lo) + 14)\" text-anchor=\"middle\">\(escape(type))</text>"
            for (i, item) in report.scores.enumerated() where item.type == type {
                let jitter = Double((i * 7919) % 100) / 100 - 0.5
                s += String(
                    format: "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.2\" fill=\"%@\" fill-opacity=\"0.6\"/>",
                    cx + jitter * pw / Double(types.count) * 0.6, py(item.score), type == "good" ? "#2e86c1" : "#c0392b"
                )
            }
        }
        s += String(
            format: "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#222\" stroke-dasharray=\"5\"/>",
            m, py(report.threshold), m + pw, py(report.threshold))
        s += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.2f</text>", m - 6, py(lo) + 4, lo)
        s += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.2f</text>", m - 6, py(hi) + 4, hi)
        return s + "</svg>\n"
    }

    /// Escapes text for HTML/SVG.
    public static func escape(_ text: String) -> String {
        var out = ""
        for c in text {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(c)
            }
        }
        return out
    }
}
