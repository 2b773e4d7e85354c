import Imaging

/// libFuzzer entry: PNG (and anything else) through the image decoder. Decoding must end in an
/// image or an `ImageError`, never a crash, a trap or an oversized allocation.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPNG(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let bytes = Array(UnsafeRawBufferPointer(start: start, count: count))
    _ = try? ImageCodec.decode(bytes, path: "fuzz.png", options: DecodeOptions(maxPixels: 4_000_000))
    return 0
}
