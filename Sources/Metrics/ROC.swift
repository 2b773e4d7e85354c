/// Area under the ROC curve for binary labels, with exact tie handling: tied scores count
/// one half (the Mann-Whitney U statistic divided by the number of positive-negative pairs).
/// Returns nil when either class is absent.
public func areaUnderROC(scores: [Double], labels: [Bool]) -> Double? {
    precondition(scores.count == labels.count, "scores and labels differ in length")
    let positives = labels.filter { $0 }.count, negatives = labels.count - positives
    guard positives > 0, negatives > 0 else { return nil }
    let order = scores.indices.sorted { scores[$0] < scores[$1] }
    var rankSum = 0.0
    var i = 0
    while i < order.count {
        var j = i
        while j + 1 < order.count && scores[order[j + 1]] == scores[order[i]] { j += 1 }
        let midRank = Double(i + j) / 2 + 1  // average 1-based rank of the tie group
        for k in i...j where labels[order[k]] { rankSum += midRank }
        i = j + 1
    }
    let u = rankSum - Double(positives) * Double(positives + 1) / 2
    return u / (Double(positives) * Double(negatives))
}

/// One operating point: predict "anomalous" when score >= threshold.
public struct OperatingPoint: Equatable, Sendable {
    /// The decision threshold.
    public var threshold: Double
    /// True positives, false positives, true negatives, false negatives.
    public var truePositives: Int, falsePositives: Int, trueNegatives: Int, falseNegatives: Int

    /// TP / (TP + FP); 1 when nothing is predicted positive (scikit-learn's convention for curves).
    public var precision: Double {
        truePositives + falsePositives == 0 ? 1 : Double(truePositives) / Double(truePositives + falsePositives)
    }
    /// TP / (TP + FN); 0 without positives.
    public var recall: Double {
        truePositives + falseNegatives == 0 ? 0 : Double(truePositives) / Double(truePositives + falseNegatives)
    }
    /// FP / (FP + TN); 0 without negatives.
    public var falsePositiveRate: Double {
        falsePositives + trueNegatives == 0 ? 0 : Double(falsePositives) / Double(falsePositives + trueNegatives)
    }
    /// Harmonic mean of precision and recall; 0 when both are 0.
    public var f1: Double {
        let tp = Double(truePositives), denominator = 2 * tp + Double(falsePositives + falseNegatives)
        return denominator == 0 ? 0 : 2 * tp / denominator
    }
}

/// Confusion counts at one threshold (score >= threshold is positive).
public func operatingPoint(scores: [Double], labels: [Bool], threshold: Double) -> OperatingPoint {
    precondition(scores.count == labels.count)
    var point = OperatingPoint(
        threshold: threshold, truePositives: 0, falsePositives: 0, trueNegatives: 0,
        falseNegatives: 0)
    for (s, l) in zip(scores, labels) {
        switch (s >= threshold, l) {
        case (true, true): point.truePositives += 1
        case (true, false): point.falsePositives += 1
        case (false, false): point.trueNegatives += 1
        case (false, true): point.falseNegatives += 1
        }
    }
    return point
}

/// Every distinct operating point, thresholds at the distinct scores from high to low.
public func operatingPoints(scores: [Double], labels: [Bool]) -> [OperatingPoint] {
    precondition(scores.count == labels.count)
    let positives = labels.filter { $0 }.count, negatives = labels.count - positives
    let order = scores.indices.sorted { scores[$0] > scores[$1] }
    var points = [OperatingPoint]()
    var tp = 0, fp = 0, i = 0
    while i < order.count {
        let threshold = scores[order[i]]
        while i < order.count && scores[order[i]] == threshold {
            if labels[order[i]] { tp += 1 } else { fp += 1 }
            i += 1
        }
        points.append(
            OperatingPoint(
                threshold: threshold, truePositives: tp, falsePositives: fp,
                trueNegatives: negatives - fp, falseNegatives: positives - tp))
    }
    return points
}

/// Average precision as scikit-learn defines it: sum over thresholds of
/// (R_n - R_(n-1)) * P_n, without interpolation. Nil without positives.
public func averagePrecision(scores: [Double], labels: [Bool]) -> Double? {
    guard labels.contains(true) else { return nil }
    var previousRecall = 0.0, ap = 0.0
    for point in operatingPoints(scores: scores, labels: labels) {
        ap += (point.recall - previousRecall) * point.precision
        previousRecall = point.recall
    }
    return ap
}

/// The best F1 over all thresholds and the threshold that reaches it (the highest such).
public func bestF1(scores: [Double], labels: [Bool]) -> OperatingPoint? {
    guard labels.contains(true) else { return nil }
    return operatingPoints(scores: scores, labels: labels).max {
        $0.f1 < $1.f1 || ($0.f1 == $1.f1 && $0.threshold > $1.threshold)
    }
}

/// ROC curve points (false positive rate, true positive rate), from (0, 0) to (1, 1).
public func rocCurve(scores: [Double], labels: [Bool]) -> [(fpr: Double, tpr: Double)] {
    [(0, 0)] + operatingPoints(scores: scores, labels: labels).map { ($0.falsePositiveRate, $0.recall) }
}

/// Precision-recall curve points (recall, precision), high threshold first.
public func precisionRecallCurve(scores: [Double], labels: [Bool]) -> [(recall: Double, precision: Double)] {
    operatingPoints(scores: scores, labels: labels).map { ($0.recall, $0.precision) }
}

/// The false positive rate at the first threshold (from the top) whose true positive rate
/// reaches `tpr` (0.95: "FPR95", the out-of-distribution detection literature's operating
/// point); nil without both classes.
public func falsePositiveRate(atTruePositiveRate tpr: Double, scores: [Double], labels: [Bool]) -> Double? {
    guard labels.contains(true), labels.contains(false) else { return nil }
    return operatingPoints(scores: scores, labels: labels).first { $0.recall >= tpr }?.falsePositiveRate
}
