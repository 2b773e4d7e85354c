/// The EXIF orientation tag (0x0112): how a camera's stored pixels must be turned for display.
public enum ExifOrientation: Int, Sendable {
    /// Stored as displayed.
    case up = 1
    /// Mirrored left-right.
    case upMirrored = 2
    /// Rotated 180 degrees.
    case down = 3
    /// Mirrored top-bottom.
    case downMirrored = 4
    /// Transposed (mirror about the main diagonal).
    case leftMirrored = 5
    /// Needs a 90-degree clockwise turn.
    case right = 6
    /// Transversed (mirror about the anti-diagonal).
    case rightMirrored = 7
    /// Needs a 90-degree counter-clockwise turn.
    case left = 8

    /// Parses the orientation from an EXIF TIFF payload; `.up` when absent or malformed.
    /// Every offset is bounds-checked: the payload comes from untrusted files.
    public init(tiff bytes: [UInt8]) {
        self = .up
        guard bytes.count >= 8 else { return }
        let little: Bool
        switch (bytes[0], bytes[1]) {
        case (0x49, 0x49): little = true
        case (0x4D, 0x4D): little = false
        default: return
        }
        func u16(_ at: Int) -> Int? {
            guard at >= 0, at + 2 <= bytes.count else { return nil }
            return little ? Int(bytes[at]) | Int(bytes[at + 1]) << 8 : Int(bytes[at]) << 8 | Int(bytes[at + 1])
        }
        func u32(_ at: Int) -> Int? {
            guard let a = u16(at), let b = u16(at + 2) else { return nil }
            return little ? a | b << 16 : a << 16 | b
        }
        guard u16(2) == 42, let ifd = u32(4), let entries = u16(ifd) else { return }
        for i in 0..<entries {
            let entry = ifd + 2 + 12 * i
            guard let tag = u16(entry) else { return }
            if tag == 0x0112, let type = u16(entry + 2), type == 3, let value = u16(entry + 8),
                let orientation = ExifOrientation(rawValue: value)
            {
                self = orientation
                return
            }
        }
    }
}

extension Image {
    /// The image turned upright according to an EXIF orientation.
    public func oriented(_ orientation: ExifOrientation) -> Image {
        if orientation == .up { return self }
        let swaps = orientation.rawValue >= 5
        let outW = swaps ? height : width
        let outH = swaps ? width : height
        var out = [UInt8](repeating: 0, count: pixels.count)
        let c = channels
        pixels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for y in 0..<outH {
                    for x in 0..<outW {
                        // Source coordinate that lands at display position (x, y).
                        let (sx, sy): (Int, Int)
                        switch orientation {
                        case .up: (sx, sy) = (x, y)
                        case .upMirrored: (sx, sy) = (width - 1 - x, y)
                        case .down: (sx, sy) = (width - 1 - x, height - 1 - y)
                        case .downMirrored: (sx, sy) = (x, height - 1 - y)
                        case .leftMirrored: (sx, sy) = (y, x)
                        case .right: (sx, sy) = (y, height - 1 - x)
                        case .rightMirrored: (sx, sy) = (width - 1 - y, height - 1 - x)
                        case .left: (sx, sy) = (width - 1 - y, x)
                        }
                        let from = (sy * width + sx) * c
                        let to = (y * outW + x) * c
                        for k in 0..<c { dst[to + k] = src[from + k] }
                    }
                }
            }
        }
        return Image(unchecked: outW, outH, c, out)
    }
}
