import Tensors

/// Where the tiles of one working image lie, and how their coarse maps are stitched.
///
/// Tile origins sit on the stride-8 lattice, so each tile's feature cells coincide with cells
/// of the whole image's grid and stitching needs no resampling. Overlapping cells are blended
/// with weights that fall off linearly over the overlap towards a tile's inner borders (where
/// the networks' zero padding shows), so the stitched map has no seams.
public struct TileLayout: Sendable {
    /// The working image's width and height, in model pixels (multiples of 8).
    public let width: Int, height: Int
    /// Tile width and height (the whole image when untiled).
    public let tileWidth: Int, tileHeight: Int
    /// Tile origins, in model pixels (multiples of 8), row by row.
    public let origins: [(x: Int, y: Int)]

    /// The layout of a `width` x `height` working image under `settings`: one tile covering it
    /// when untiled.
    public init(width: Int, height: Int, settings: DetectorSettings) {
        self.init(
            width: width, height: height, tile: settings.isTiled ? settings.tileSize : 0,
            overlap: settings.tileOverlap)
    }

    /// Tiles of side `tile` (0: one tile, the whole image) overlapping by about `overlap` of a
    /// side; a side no longer than a tile gets one tile.
    public init(width: Int, height: Int, tile: Int, overlap: Double) {
        self.width = width
        self.height = height
        guard tile > 0 else {
            (tileWidth, tileHeight, origins) = (width, height, [(0, 0)])
            return
        }
        precondition(width >= tile && height >= tile, "a tiled image is at least one tile in each direction")
        (tileWidth, tileHeight) = (tile, tile)
        let xs = Self.starts(length: width, tile: tile, overlap: overlap)
        let ys = Self.starts(length: height, tile: tile, overlap: overlap)
        origins = ys.flatMap { y in xs.map { (x: $0, y: y) } }
    }

    /// Evenly spread starts on the stride-8 lattice, the first at 0 and the last at
    /// `length - tile`, no further apart than a tile minus the overlap.
    static func starts(length: Int, tile: Int, overlap: Double) -> [Int] {
        guard length > tile else { return [0] }
        let step = max(8, Int(Double(tile) * (1 - overlap) / 8) * 8)
        let count = (length - tile + step - 1) / step + 1
        let span = (length - tile) / 8
        return (0..<count).map { i in 8 * Int((Double(span) * Double(i) / Double(count - 1)).rounded()) }
    }

    /// Tiles in the layout.
    public var count: Int { origins.count }
    /// Whether there is one tile covering the whole image.
    public var isWhole: Bool { origins.count == 1 && tileWidth == width && tileHeight == height }
    /// The whole image's feature grid (height, width), one cell per 8x8 pixels.
    public var grid: (height: Int, width: Int) { ((height + 7) / 8, (width + 7) / 8) }

    /// Tile `index` of a (1, C, height, width) tensor: (1, C, tileHeight, tileWidth).
    public func crop(_ image: Tensor, tile index: Int) -> Tensor {
        guard !isWhole else { return image }
        let (x0, y0) = origins[index], c = image.channels, w = image.width, h = image.height
        let (tw, th) = (tileWidth, tileHeight)
        return Tensor(shape: [1, c, th, tw]) { out in
            image.storage.withUnsafeBufferPointer { src in
                for k in 0..<c {
                    for y in 0..<th {
                        let from = (k * h + y0 + y) * w + x0, to = (k * th + y) * tw
                        for x in 0..<tw { out[to + x] = src[from + x] }
                    }
                }
            }
        }
    }

    /// Blending weight of cell `i` of `n` along one axis of a tile: 1 inside, falling linearly
    /// to 1/(ramp+1) at a border shared with a neighbour over a ramp of `ramp` cells; cells on
    /// the image's own border keep weight 1 (no neighbour to hand over to).
    static func weight(_ i: Int, of n: Int, ramp: Int, neighbourBefore: Bool, neighbourAfter: Bool) -> Float {
        guard ramp > 0 else { return 1 }
        var d = ramp + 1
        if neighbourBefore { d = min(d, i + 1) }
        if neighbourAfter { d = min(d, n - i) }
        return Float(d) / Float(ramp + 1)
    }

    /// The tiles' coarse maps, (tileHeight/8 * tileWidth/8) each in `origins` order, stitched
    /// into one map on the whole image's grid, (grid.height * grid.width).
    public func stitch(_ maps: [[Float]]) -> [Float] {
        precondition(maps.count == origins.count, "one map per tile")
        guard !isWhole else { return maps[0] }
        let (gh, gw) = grid, th = tileHeight / 8, tw = tileWidth / 8
        var sum = [Float](repeating: 0, count: gh * gw), total = [Float](repeating: 0, count: gh * gw)
        // Ramp over the overlap with the nearest neighbour along each axis.
        let xStarts = Set(origins.map(\.x)).sorted(), yStarts = Set(origins.map(\.y)).sorted()
        func ramp(_ starts: [Int], _ tile: Int) -> Int {
            guard starts.count > 1 else { return 0 }
            let step = zip(starts.dropFirst(), starts).map { ($0 - $1) / 8 }.min() ?? tile
            return max(0, tile - step)
        }
        let rx = ramp(xStarts, tw), ry = ramp(yStarts, th)
        for (t, origin) in origins.enumerated() {
            let (cx, cy) = (origin.x / 8, origin.y / 8), map = maps[t]
            precondition(map.count == th * tw, "tile map of the wrong size")
            let left = cx > 0, right = cx + tw < gw, top = cy > 0, bottom = cy + th < gh
            let wx = (0..<tw).map { Self.weight($0, of: tw, ramp: rx, neighbourBefore: left, neighbourAfter: right) }
            for y in 0..<th {
                let wy = Self.weight(y, of: th, ramp: ry, neighbourBefore: top, neighbourAfter: bottom)
                let row = (cy + y) * gw + cx
                for x in 0..<tw {
                    let w = wy * wx[x]
                    sum[row + x] += w * map[y * tw + x]
                    total[row + x] += w
                }
            }
        }
        return zip(sum, total).map { $1 > 0 ? $0 / $1 : 0 }
    }

    /// Cell offset (x, y) of tile `index` on the whole image's grid.
    public func cellOffset(_ index: Int) -> (x: Int, y: Int) { (origins[index].x / 8, origins[index].y / 8) }
}
