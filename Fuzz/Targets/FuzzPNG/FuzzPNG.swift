import FuzzSupport
import Imaging

/// libFuzzer entry: PNG (and anything else) through the image decoder. Decoding must end in an
/// image or an `ImageError`, never a crash, a trap or an oversized allocation.
let fuzzPNG: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt = { data, count in
    let bytes = fuzzBytes(data, count)
    _ = try? ImageCodec.decode(bytes, path: "fuzz.png", options: DecodeOptions(maxPixels: 4_000_000))
    return 0
}

/// The executable's entry point (see FuzzSupport).
@_cdecl("FuzzPNG_main")
public func entry(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv, fuzzPNG)
}
