import Dispatch
import Imaging
import Models
import Tensors

/// Fusion of the components' maps: refined to half the model resolution, calibrated,
/// weighted, and optionally widened by a second smoothing.
extension Detector {
    /// A coarse map upsampled to half the model resolution and smoothed.
    public func refine(_ coarse: [Float], geometry g: MapGeometry) -> AnomalyResult {
        // Smoothed at half the model resolution (sigma halved to match): the map is
        // resampled to the photo's own size afterwards anyway, and this is 8x less work
        // than blurring at full model resolution (measured: 9% of inspection time).
        let (w, h) = (max(1, g.inputWidth / 2), max(1, g.inputHeight / 2))
        let grid = Tensor(shape: [1, 1, g.gridHeight, g.gridWidth], storage: coarse)
        let fine = upsampleBilinear(grid, height: h, width: w).storage
        return AnomalyResult(
            map: gaussianBlur(fine, width: w, height: h, sigma: settings.blurSigma / 2), width: w, height: h)
    }

    /// Each component's raw map at half the model resolution (upsampled and blurred), in settings order.
    public func componentMaps(_ image: Image) -> [AnomalyResult] {
        let (maps, geometry) = coarseMaps(image)
        return maps.map { refine($0, geometry: geometry) }
    }

    /// Whether the image score comes from a proper subset of the components.
    public var scoresSeparately: Bool {
        !settings.scoreComponents.isEmpty && settings.scoreComponents != settings.components
    }

    /// Whether the image score comes from another map than the heatmap (a subset of the
    /// components, or the heatmap before its wide-scale maximum), with its own calibration.
    public var hasScoreMap: Bool { scoresSeparately || settings.wideBlurSigma > 0 }

    /// Indices of the components that give the image score.
    var scoreIndices: [Int] {
        scoresSeparately
            ? settings.scoreComponents.compactMap { settings.components.firstIndex(of: $0) }
            : Array(settings.components.indices)
    }

    /// Fuses the maps of the components at `indices`: one component's raw map, or the
    /// weighted mean of several calibrated maps.
    func fuse(_ maps: [AnomalyResult], indices: [Int]) -> AnomalyResult {
        guard let first = indices.first else { return AnomalyResult(map: [0], width: 1, height: 1) }
        return AnomalyResult(
            map: fuse(maps.map(\.map), indices: indices), width: maps[first].width, height: maps[first].height)
    }

    /// `fuse` on equally sized planes (refined maps, or coarse maps on the feature grid).
    func fuse(_ planes: [[Float]], indices: [Int]) -> [Float] {
        guard let first = indices.first else { return [0] }
        guard indices.count > 1 else { return planes[first] }
        var fused = [Float](repeating: 0, count: planes[first].count)
        let weights = indices.map {
            settings.componentWeights.count == planes.count ? settings.componentWeights[$0] : 1
        }
        let total = max(weights.reduce(0, +), 1e-6)
        for (index, weight) in zip(indices, weights) where weight > 0 {
            let norm = componentNormalizations[index], plane = planes[index]
            for i in 0..<fused.count { fused[i] += weight / total * norm.apply(plane[i]) }
        }
        return fused
    }

    /// The fused map of all components and, when the score has a map of its own (`hasScoreMap`), that map.
    public func fusedMaps(_ image: Image) -> (map: AnomalyResult, scoreMap: AnomalyResult?) {
        let (coarse, geometry) = coarseMaps(image)
        return fusedMaps(coarse: coarse, geometry: geometry)
    }

    /// `fusedMaps` from the components' coarse maps.
    public func fusedMaps(coarse: [[Float]], geometry: MapGeometry) -> (map: AnomalyResult, scoreMap: AnomalyResult?) {
        fusedMaps(refined: coarse.map { refine($0, geometry: geometry) }, coarse: coarse, geometry: geometry)
    }

    /// `fusedMaps` from the coarse maps and their refinements (`refine`).
    func fusedMaps(
        refined maps: [AnomalyResult], coarse: [[Float]], geometry: MapGeometry
    ) -> (map: AnomalyResult, scoreMap: AnomalyResult?) {
        let all = Array(maps.indices)
        let fine = fuse(maps, indices: all)
        let scoreMap = scoresSeparately ? fuse(maps, indices: scoreIndices) : fine
        guard settings.wideBlurSigma > 0 else { return (fine, scoresSeparately ? scoreMap : nil) }
        // Fused on the coarse grid, then refined once: upsampling and blurring are linear and
        // keep constants, so this equals fusing the refined maps, at a component's cost.
        let wideCoarse = fuse(coarse, indices: all)
        // Smoothed at a quarter of the model resolution (a wide blur leaves nothing finer to
        // keep; 8x less work than at half resolution), then brought to the fine map's size.
        let (w, h) = (max(1, geometry.inputWidth / 4), max(1, geometry.inputHeight / 4))
        let grid = Tensor(shape: [1, 1, geometry.gridHeight, geometry.gridWidth], storage: wideCoarse)
        let quarter = gaussianBlur(
            upsampleBilinear(grid, height: h, width: w).storage, width: w, height: h,
            sigma: settings.wideBlurSigma / 4)
        let wide = upsampleBilinear(
            Tensor(shape: [1, 1, h, w], storage: quarter), height: fine.height, width: fine.width)
        let map = zip(fine.map, wide.storage).map { max($0, $1) }
        return (AnomalyResult(map: map, width: fine.width, height: fine.height), scoreMap)
    }

    /// The fused map at model resolution (for a single component, its raw map); its score is
    /// the map's maximum, or the maximum of the score components' map.
    public func analyze(_ image: Image) -> AnomalyResult { examine(image).result }

    /// `analyze`, and what the primary shift detector reads of the image, gathered in the same
    /// pass over the tiles (nil when the detector has no shift detectors).
    public func examine(_ image: Image) -> (result: AnomalyResult, shift: ShiftFeatures?) {
        var probe = shift.map { ShiftProbe(components: $0.primaryReadsGradients ? components : []) }
        let (tiles, layout) = rawTileMaps(image) { probe?.observe($0) }
        let (coarse, geometry) = stitched(tiles, layout: layout)
        // Each map's refinement and the shift features' medians (in two halves of the channels)
        // are independent single-thread jobs of a few tenths of a millisecond: side by side on
        // the cores, the medians (the largest) first.
        var refined = [AnomalyResult](repeating: AnomalyResult(map: [], width: 0, height: 0), count: coarse.count)
        let channels = probe?.pooling.values.count ?? 0
        var pooled = [Float](repeating: 0, count: channels)
        refined.withUnsafeMutableBufferPointer { maps in
            pooled.withUnsafeMutableBufferPointer { medians in
                let (out, pooledOut) = (UnsafeSendable(maps.baseAddress), UnsafeSendable(medians.baseAddress))
                let halves = channels > 1 ? 2 : channels, jobs = halves + coarse.count
                func run(_ job: Int) {
                    if job < halves {
                        guard let into = pooledOut.pointer else { return }
                        probe?.pooling.medians(
                            of: (channels * job / halves)..<(channels * (job + 1) / halves), into: into)
                    } else {
                        out.pointer?[job - halves] = refine(coarse[job - halves], geometry: geometry)
                    }
                }
                if computeThreads > 1 {
                    DispatchQueue.concurrentPerform(iterations: jobs, execute: run)
                } else {
                    (0..<jobs).forEach(run)
                }
            }
        }
        let features = probe?.features(pooled: pooled)
        let (map, scoreMap) = fusedMaps(refined: refined, coarse: coarse, geometry: geometry)
        var result = map
        if let scoreMap { result.score = scoreMap.score }
        return (result, features)
    }
}
