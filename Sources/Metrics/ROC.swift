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
