import Foundation
import SyntheticData
import XCTest

/// The triage workflow as users run it: a report opened in a real browser, marks fed back with
/// `anomap label`, and shards run with GNU parallel and merged.
final class TriageTests: XCTestCase {
    static let hostileName = "<img src=x onerror=alert(1)>.png"

    /// A synthetic dataset, a fast model, and a file whose name is markup.
    struct Setup {
        var dir: URL
        var data: String
        var model: String
    }

    func makeSetup(_ name: String, components: String = "gaussian") throws -> Setup {
        let cli = CLIRunner()
        try cli.requireWeights()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-\(getpid())")
        try? FileManager.default.removeItem(at: dir)
        let data = dir.appendingPathComponent("data").path
        try SyntheticParts.write(to: data, train: 12, testGood: 4, testPerDefect: 2, size: 96, seed: 5)
        try FileManager.default.copyItem(
            atPath: data + "/test/good/000.png", toPath: data + "/test/good/" + Self.hostileName)
        let model = dir.appendingPathComponent("model.safetensors").path
        let train = try cli.run([
            "train", data + "/train/good", "-o", model, "--input-size", "128", "--bank-size", "200",
            "--components", components, "--quiet", "--json",
        ])
        XCTAssertEqual(train.status, 0, train.stderr)
        let summary = try XCTUnwrap(
            JSONSerialization.jsonObject(with: Data(train.stdout.utf8)) as? [String: Any], train.stdout)
        XCTAssertEqual((summary["training_images"] as? Int ?? 0) + (summary["calibration_images"] as? Int ?? 0), 12)
        return Setup(dir: dir, data: data, model: model)
    }

    /// The page's DOM after its script ran, as headless Chromium renders it.
    func renderedDOM(_ page: String, fragment: String = "", profile: URL) throws -> String {
        let url = URL(fileURLWithPath: page).absoluteString + (fragment.isEmpty ? "" : "#" + fragment)
        // A script dialog (an injected alert) would block the page forever: the time limit turns it into a failure.
        let result = try CLIRunner().runTool([
            "timeout", "30", "chromium", "--headless", "--no-sandbox", "--disable-gpu",
            "--user-data-dir=\(profile.path)", "--virtual-time-budget=3000",
            "--dump-dom", url,
        ])
        XCTAssertEqual(result.status, 0, result.stderr)
        return result.stdout
    }

    /// The gallery's cards in page order: (score, hidden, name).
    func cards(_ dom: String) throws -> [(score: Double?, hidden: Bool, name: String)] {
        let card = try NSRegularExpression(
            pattern: #"<article class="card[^"]*"([^>]*)>.*?<div class="name">([^<]*)</div>"#,
            options: [.dotMatchesLineSeparators])
        let ns = dom as NSString
        return card.matches(in: dom, range: NSRange(location: 0, length: ns.length)).map { m in
            let attributes = ns.substring(with: m.range(at: 1))
            var score: Double?
            if let r = attributes.range(of: #"data-score="([^"]*)""#, options: .regularExpression) {
                score = Double(attributes[r].dropFirst(12).dropLast())
            }
            return (score, attributes.contains("hidden"), ns.substring(with: m.range(at: 2)))
        }
    }

    func testReportInAHeadlessBrowser() throws {
        let cli = CLIRunner()
        try cli.requireTools(["chromium:chromium"])
        let s = try makeSetup("triage-report")
        defer { try? FileManager.default.removeItem(at: s.dir) }
        let out = s.dir.appendingPathComponent("out").path, report = s.dir.appendingPathComponent("report").path
        let inspect = try cli.run([
            "inspect", s.data + "/test", "--model", s.model, "--out", out, "--report", report, "--json", "--quiet",
        ])
        XCTAssertEqual(inspect.status, 0, inspect.stderr)
        let results = try XCTUnwrap(
            JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/results.json")))
                as? [[String: Any]])
        XCTAssertEqual(results.count, 4 + 1 + 3 * 2)
        let expectedScores = results.compactMap { $0["normalized_score"] as? Double }.sorted(by: >)
        let normalCount = results.filter { $0["verdict"] as? String == "normal" }.count
        XCTAssertGreaterThan(normalCount, 0)
        XCTAssertLessThan(normalCount, results.count)
        let profile = s.dir.appendingPathComponent("chromium-profile")

        // Every image has a card, most suspicious first, none hidden.
        let page = report + "/index.html"
        let all = try cards(try renderedDOM(page, profile: profile))
        XCTAssertEqual(all.count, results.count)
        XCTAssertFalse(all.contains { $0.hidden })
        let shown = all.compactMap(\.score)
        XCTAssertEqual(shown.count, expectedScores.count)
        for (a, b) in zip(shown, expectedScores) { XCTAssertEqual(a, b, accuracy: 1e-4) }
        // The markup in the file name is text: escaped in the DOM, and no element came of it.
        let dom = try renderedDOM(page, profile: profile)
        XCTAssertTrue(
            dom.contains("<div class=\"name\">&lt;img src=x onerror=alert(1)&gt;.png</div>"), "escaped name missing")
        XCTAssertFalse(dom.contains("<img src=\"x\""))
        XCTAssertFalse(dom.contains("onerror=\"alert"))

        // A verdict filter hides exactly the other verdicts' cards.
        let filtered = try cards(try renderedDOM(page, fragment: "verdict=normal", profile: profile))
        XCTAssertEqual(filtered.count, results.count)
        XCTAssertEqual(filtered.filter { !$0.hidden }.count, normalCount)
        let normalNames = Set(
            results.filter { $0["verdict"] as? String == "normal" }
                .compactMap { (($0["path"] as? String) as NSString?)?.lastPathComponent })
        for card in filtered {
            let name = card.name.replacingOccurrences(of: "&lt;", with: "<").replacingOccurrences(of: "&gt;", with: ">")
            if !card.hidden { XCTAssertTrue(normalNames.contains(name), "\(name) is shown but not normal") }
        }
        // The name search finds the hostile file alone.
        let searched = try cards(try renderedDOM(page, fragment: "q=onerror", profile: profile))
        XCTAssertEqual(searched.filter { !$0.hidden }.map(\.name), ["&lt;img src=x onerror=alert(1)&gt;.png"])
        // Report pictures exist for every card, named by number only.
        let pictures = try FileManager.default.contentsOfDirectory(atPath: report + "/img")
        XCTAssertEqual(pictures.filter { $0.hasSuffix("_thumb.jpg") }.count, results.count)
        XCTAssertFalse(pictures.contains { $0.contains("onerror") })

        // An evaluation report: metrics table, curves, ground truth, and a defect-type filter.
        let evalReport = s.dir.appendingPathComponent("eval-report").path
        let eval = try cli.run([
            "eval", s.data, "--model", s.model, "--out", s.dir.appendingPathComponent("eval").path,
            "--report", evalReport, "--json", "--quiet",
        ])
        XCTAssertEqual(eval.status, 0, eval.stderr)
        let summary = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(eval.stdout.utf8)) as? [String: Any])
        XCTAssertNotNil(summary["image_auroc"] as? Double)
        let evalDOM = try renderedDOM(evalReport + "/index.html", fragment: "group=crack", profile: profile)
        let evalCards = try cards(evalDOM)
        XCTAssertEqual(evalCards.count, results.count)
        XCTAssertEqual(evalCards.filter { !$0.hidden }.count, 2)
        XCTAssertTrue(evalDOM.contains("<td>overall</td>"))
        XCTAssertTrue(evalDOM.contains("src=\"roc.svg\""))
        XCTAssertTrue(
            try FileManager.default.contentsOfDirectory(atPath: evalReport + "/img").contains {
                $0.hasSuffix("_truth.png")
            })
    }

    func testFalseAlarmMarksAreLearnedByAMemoryBankModel() throws {
        let cli = CLIRunner()
        let s = try makeSetup("triage-label", components: "knn")
        defer { try? FileManager.default.removeItem(at: s.dir) }
        let defect = s.data + "/test/spot/000.png", other = s.data + "/test/crack/000.png"
        func score(_ model: String, _ path: String) throws -> (Double, String) {
            let out = s.dir.appendingPathComponent("o-\(UUID().uuidString)").path
            let r = try cli.run(["inspect", path, "--model", model, "--out", out, "--no-images", "--quiet"])
            XCTAssertEqual(r.status, 0, r.stderr)
            let rows = try XCTUnwrap(
                JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/results.json")))
                    as? [[String: Any]])
            return (
                try XCTUnwrap(rows.first?["normalized_score"] as? Double),
                try XCTUnwrap(rows.first?["verdict"] as? String)
            )
        }
        XCTAssertEqual(try score(s.model, defect).1, "anomalous")
        // The page's export format: a quoted path with a comma in its folder name.
        let odd = s.dir.appendingPathComponent("a, \"b\"").path
        try FileManager.default.createDirectory(atPath: odd, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: defect, toPath: odd + "/spot.png")
        let quoted = "\"" + (odd + "/spot.png").replacingOccurrences(of: "\"", with: "\"\"") + "\""
        let marks = s.dir.appendingPathComponent("marks.csv").path
        try "path,mark,score,verdict\n\(quoted),false alarm,6.1,anomalous\n\(other),defect,5.0,anomalous\n"
            .write(toFile: marks, atomically: true, encoding: .utf8)
        let updated = s.dir.appendingPathComponent("labelled.safetensors").path
        let label = try cli.run(["label", marks, "--model", s.model, "-o", updated, "--json", "--quiet"])
        XCTAssertEqual(label.status, 0, label.stderr)
        let summary = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(label.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(summary["false_alarms"] as? Int, 1)
        XCTAssertGreaterThan(summary["patches_added"] as? Int ?? 0, 0)
        let (after, verdict) = try score(updated, defect)
        XCTAssertEqual(verdict, "normal")
        XCTAssertLessThan(after, 0.5 + 1e-3, "learned patches keep the map under half the threshold")
        XCTAssertEqual(try score(updated, other).1, "anomalous", "a defect mark teaches nothing")

        // A model whose components learn only in training says so and changes nothing.
        let gaussian = s.dir.appendingPathComponent("gaussian.safetensors").path
        let train = try cli.run([
            "train", s.data + "/train/good", "-o", gaussian, "--input-size", "128", "--components", "gaussian",
            "--quiet",
        ])
        XCTAssertEqual(train.status, 0, train.stderr)
        let before = try Data(contentsOf: URL(fileURLWithPath: gaussian))
        let refused = try cli.run(["label", marks, "--model", gaussian])
        XCTAssertEqual(refused.status, 2)
        XCTAssertTrue(refused.stderr.contains("gaussian component learns only in training"), refused.stderr)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: gaussian)), before)
        let garbage = s.dir.appendingPathComponent("garbage.csv").path
        try "name,verdict\nx,y\n".write(toFile: garbage, atomically: true, encoding: .utf8)
        let bad = try cli.run(["label", garbage, "--model", s.model])
        XCTAssertEqual(bad.status, 2)
        XCTAssertTrue(bad.stderr.contains("garbage.csv: not a marks file"), bad.stderr)
    }

    func testThreeShardsWithGNUParallelMergeToASingleRun() throws {
        let cli = CLIRunner()
        try cli.requireTools(["parallel:parallel"])
        let s = try makeSetup("triage-shards")
        defer { try? FileManager.default.removeItem(at: s.dir) }
        let single = s.dir.appendingPathComponent("single").path
        let one = try cli.run(["inspect", s.data + "/test", "--model", s.model, "--out", single, "--quiet"])
        XCTAssertEqual(one.status, 0, one.stderr)
        let shards = s.dir.appendingPathComponent("shards").path
        let run = try cli.runTool([
            "parallel", "--will-cite", "--halt", "now,fail=1", "anomap", "inspect", s.data + "/test",
            "--model", s.model, "--out", shards + "/{}", "--shard", "{}/3", "--quiet", ":::", "1", "2", "3",
        ])
        XCTAssertEqual(run.status, 0, run.stderr)
        let merged = s.dir.appendingPathComponent("merged").path
        let merge = try cli.run([
            "merge", shards + "/1", shards + "/2", shards + "/3", "--out", merged,
            "--report", s.dir.appendingPathComponent("report").path, "--json", "--quiet",
        ])
        XCTAssertEqual(merge.status, 0, merge.stderr)
        // Same results files byte for byte, and the same pictures.
        for name in ["results.json", "results.csv"] {
            XCTAssertEqual(
                try Data(contentsOf: URL(fileURLWithPath: "\(merged)/\(name)")),
                try Data(contentsOf: URL(fileURLWithPath: "\(single)/\(name)")), name)
        }
        let pictures = try XCTUnwrap(FileManager.default.subpathsOfDirectory(atPath: single)).filter {
            $0.hasSuffix(".png")
        }.sorted()
        XCTAssertEqual(pictures.count, 11 * 3)
        XCTAssertEqual(
            try FileManager.default.subpathsOfDirectory(atPath: merged).filter { $0.hasSuffix(".png") }.sorted(),
            pictures)
        for p in pictures {
            XCTAssertEqual(
                try Data(contentsOf: URL(fileURLWithPath: "\(merged)/\(p)")),
                try Data(contentsOf: URL(fileURLWithPath: "\(single)/\(p)")), p)
        }
        // Overlapping shards are refused.
        let overlap = try cli.run([
            "merge", shards + "/1", shards + "/1", "--out", s.dir.appendingPathComponent("bad").path,
        ])
        XCTAssertEqual(overlap.status, 2)
        XCTAssertTrue(overlap.stderr.contains("the shards overlap"), overlap.stderr)
    }
}
