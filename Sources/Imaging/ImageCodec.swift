import CImageCodecs
import SafeFiles

/// The file formats anomap reads, recognized by content rather than by extension.
public enum ImageFormat: String, Sendable {
    /// Portable Network Graphics.
    case png
    /// JPEG (JFIF/EXIF).
    case jpeg

    /// The format the leading bytes announce, or nil for anything else.
    public static func sniff<C: Collection>(_ bytes: C) -> ImageFormat? where C.Element == UInt8 {
        let head = Array(bytes.prefix(8))
        if head == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] { return .png }
        if head.count >= 3, head[0] == 0xFF, head[1] == 0xD8, head[2] == 0xFF { return .jpeg }
        return nil
    }
}

/// Limits and choices for decoding.
public struct DecodeOptions: Sendable {
    /// Largest accepted `width * height`; larger images are refused before allocation.
    public var maxPixels: Int
    /// Largest accepted file size in bytes.
    public var maxFileBytes: Int
    /// Rotate/flip JPEG photos as their EXIF orientation tag says.
    public var appliesOrientation: Bool
    /// When set, a JPEG may be decoded smaller than stored, at the smallest n/8 of its size
    /// whose sides are both at least this many pixels (libjpeg's DCT scaling skips the work;
    /// both sides, because the EXIF orientation may swap them). PNGs are always full size.
    public var minimumSide: Int?

    /// Defaults: 100 megapixels, 512 MiB files, EXIF orientation applied, full size.
    public init(
        maxPixels: Int = 100_000_000, maxFileBytes: Int = 512 << 20, appliesOrientation: Bool = true,
        minimumSide: Int? = nil
    ) {
        self.maxPixels = maxPixels
        self.maxFileBytes = maxFileBytes
        self.appliesOrientation = appliesOrientation
        self.minimumSide = minimumSide
    }
}

/// Decoding and encoding of PNG and JPEG through the setjmp-guarded C shim.
public enum ImageCodec {
    /// Decodes PNG or JPEG bytes (format by content). `path` only names the file in errors.
    public static func decode(_ bytes: [UInt8], path: String? = nil, options: DecodeOptions = .init()) throws -> Image {
        try decodeReporting(bytes, path: path, options: options).image
    }

    /// `decode`, and the size the image has at full resolution, oriented (it differs from the
    /// image's own size when `options.minimumSide` let a JPEG decode smaller).
    public static func decodeReporting(
        _ bytes: [UInt8], path: String? = nil, options: DecodeOptions = .init()
    ) throws -> (image: Image, fullWidth: Int, fullHeight: Int) {
        guard !bytes.isEmpty else { throw ImageError(path: path, reason: .notAnImage("empty file")) }
        guard let format = ImageFormat.sniff(bytes) else {
            throw ImageError(path: path, reason: .notAnImage("unrecognized signature"))
        }
        var raw = ac_image()
        var message = [CChar](repeating: 0, count: Int(AC_MESSAGE_SIZE))
        let status: Int32 = bytes.withUnsafeBufferPointer { buffer in
            message.withUnsafeMutableBufferPointer { text in
                switch format {
                case .png:
                    return ac_png_decode(
                        buffer.baseAddress, buffer.count, Int64(options.maxPixels), &raw, text.baseAddress)
                case .jpeg:
                    let side = Int32(clamping: options.minimumSide ?? 0)
                    return ac_jpeg_decode_scaled(
                        buffer.baseAddress, buffer.count, Int64(options.maxPixels), side, side, &raw,
                        text.baseAddress)
                }
            }
        }
        defer {
            ac_free(raw.pixels)
            ac_free(raw.exif)
        }
        let text = String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard status == Int32(AC_OK.rawValue), let pixels = raw.pixels else {
            throw ImageError(path: path, reason: reason(status: status, message: text, format: format))
        }
        let count = Int(raw.width) * Int(raw.height) * Int(raw.channels)
        var image = Image(
            unchecked: Int(raw.width), Int(raw.height), Int(raw.channels),
            Array(UnsafeBufferPointer(start: pixels, count: count)))
        var (fullWidth, fullHeight) =
            format == .jpeg ? (Int(raw.source_width), Int(raw.source_height)) : (image.width, image.height)
        if options.appliesOrientation, let exif = raw.exif, raw.exif_size > 0 {
            let orientation = ExifOrientation(tiff: Array(UnsafeBufferPointer(start: exif, count: raw.exif_size)))
            let stored = image.width
            image = image.oriented(orientation)
            if image.width != stored { (fullWidth, fullHeight) = (fullHeight, fullWidth) }
        }
        return (image, fullWidth, fullHeight)
    }

    /// Reads and decodes an image file.
    public static func read(contentsOf path: String, options: DecodeOptions = .init()) throws -> Image {
        try readReporting(contentsOf: path, options: options).image
    }

    /// Reads and decodes an image file, with its full-resolution size (see `decodeReporting`).
    public static func readReporting(
        contentsOf path: String, options: DecodeOptions = .init()
    ) throws -> (image: Image, fullWidth: Int, fullHeight: Int) {
        try decodeReporting(try readBytes(contentsOf: path, options: options), path: path, options: options)
    }

    /// An image file's bytes (at most `options.maxFileBytes`), for decoding them more than once.
    public static func readBytes(contentsOf path: String, options: DecodeOptions = .init()) throws -> [UInt8] {
        do {
            return try readFile(path, maxBytes: options.maxFileBytes)
        } catch let error as FileError {
            throw ImageError(path: path, reason: .io(error.reason))
        }
    }

    /// Encodes an 8-bit gray, gray+alpha, RGB or RGBA image as PNG.
    public static func encodePNG(_ image: Image, compressionLevel: Int = 6) throws -> [UInt8] {
        let colorType: Int32 = [1: 0, 2: 4, 3: 2, 4: 6][image.channels] ?? 0
        return try encodePNGSamples(
            image.pixels, width: image.width, height: image.height, colorType: colorType,
            bitDepth: 8, compressionLevel: compressionLevel)
    }

    /// Encodes raw PNG samples of any colour type and bit depth (see `ac_png_encode`);
    /// used to build test images of every kind PNG allows.
    public static func encodePNGSamples(
        _ samples: [UInt8], width: Int, height: Int, colorType: Int32, bitDepth: Int32,
        interlaced: Bool = false, palette: [UInt8] = [], transparency: [UInt8] = [],
        compressionLevel: Int = 6
    ) throws -> [UInt8] {
        let perPixel = [0: 1, 2: 3, 3: 1, 4: 2, 6: 4][Int(colorType)] ?? 0
        let rowBytes = (width * perPixel * Int(bitDepth) + 7) / 8
        guard perPixel > 0, width > 0, height > 0, samples.count == rowBytes * height else {
            throw ImageError(path: nil, reason: .invalidArgument("PNG samples do not match \(width)x\(height)"))
        }
        var out: UnsafeMutablePointer<UInt8>?
        var size = 0
        var message = [CChar](repeating: 0, count: Int(AC_MESSAGE_SIZE))
        let status = samples.withUnsafeBufferPointer { s in
            palette.withUnsafeBufferPointer { p in
                transparency.withUnsafeBufferPointer { t in
                    message.withUnsafeMutableBufferPointer { m in
                        ac_png_encode(
                            s.baseAddress, Int32(width), Int32(height), colorType, bitDepth, interlaced ? 1 : 0,
                            p.baseAddress, Int32(palette.count / 3), t.baseAddress, Int32(transparency.count),
                            Int32(compressionLevel), &out, &size, m.baseAddress)
                    }
                }
            }
        }
        defer { ac_free(out) }
        guard status == Int32(AC_OK.rawValue), let bytes = out else {
            throw ImageError(path: nil, reason: .invalidArgument("PNG encoding failed"))
        }
        return Array(UnsafeBufferPointer(start: bytes, count: size))
    }

    /// Encodes a gray or RGB image as JPEG (alpha is dropped); `exif` is a TIFF payload.
    public static func encodeJPEG(
        _ image: Image, quality: Int = 92, progressive: Bool = false,
        exif: [UInt8] = []
    ) throws -> [UInt8] {
        let source =
            image.channels == 1 || image.channels == 3 ? image : (image.channels == 2 ? image.gray() : image.rgb())
        return try encodeJPEGSamples(
            source.pixels, width: source.width, height: source.height,
            channels: source.channels, quality: quality,
            flags: progressive ? Int32(AC_JPEG_PROGRESSIVE) : 0, exif: exif)
    }

    /// Encodes raw 8-bit samples as JPEG: 1 gray, 3 RGB, or 4 CMYK stored as given (Adobe
    /// convention) with `flags` from the shim (progressive, YCCK); used to build test files.
    public static func encodeJPEGSamples(
        _ samples: [UInt8], width: Int, height: Int, channels: Int, quality: Int,
        flags: Int32, exif: [UInt8] = []
    ) throws -> [UInt8] {
        guard width > 0, height > 0, [1, 3, 4].contains(channels), samples.count == width * height * channels else {
            throw ImageError(
                path: nil, reason: .invalidArgument("JPEG samples do not match \(width)x\(height)x\(channels)"))
        }
        var out: UnsafeMutablePointer<UInt8>?
        var size = 0
        var message = [CChar](repeating: 0, count: Int(AC_MESSAGE_SIZE))
        let status = samples.withUnsafeBufferPointer { s in
            exif.withUnsafeBufferPointer { e in
                message.withUnsafeMutableBufferPointer { m in
                    ac_jpeg_encode(
                        s.baseAddress, Int32(width), Int32(height), Int32(channels),
                        Int32(quality), flags, e.baseAddress, exif.count, &out, &size, m.baseAddress)
                }
            }
        }
        defer { ac_free(out) }
        guard status == Int32(AC_OK.rawValue), let bytes = out else {
            throw ImageError(path: nil, reason: .invalidArgument("JPEG encoding failed"))
        }
        return Array(UnsafeBufferPointer(start: bytes, count: size))
    }

    /// Writes an image as PNG atomically (temporary file, then rename).
    public static func writePNG(_ image: Image, to path: String, compressionLevel: Int = 6) throws {
        let bytes = try encodePNG(image, compressionLevel: compressionLevel)
        do {
            try writeFileAtomically(bytes, to: path)
        } catch let error as FileError {
            throw ImageError(path: path, reason: .io(error.reason))
        }
    }

    private static func reason(status: Int32, message: String, format: ImageFormat) -> ImageError.Reason {
        let name = format == .png ? "PNG" : "JPEG"
        switch status {
        case Int32(AC_NOT_RECOGNIZED.rawValue): return .notAnImage(message)
        case Int32(AC_TOO_LARGE.rawValue): return .tooLarge(message)
        case Int32(AC_NO_MEMORY.rawValue): return .outOfMemory
        default: return .corrupt("\(name): \(message.isEmpty ? "unreadable data" : message)")
        }
    }
}
