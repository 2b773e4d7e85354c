/// The first file field of a multipart/form-data body (RFC 7578): its bytes and file name.
/// Returns nil when the body does not follow the boundary the Content-Type names.
func multipartFile(_ body: [UInt8], contentType: String) -> (bytes: [UInt8], filename: String?)? {
    guard let boundary = multipartBoundary(contentType) else { return nil }
    let delimiter = Array(("--" + boundary).utf8)
    let crlf: [UInt8] = [13, 10]
    var starts = [Int]()  // offsets just past each delimiter line
    var from = 0
    while let found = firstIndex(of: delimiter, in: body, from: from) {
        starts.append(found + delimiter.count)
        from = found + delimiter.count
    }
    guard starts.count >= 2 else { return nil }
    var fallback: (bytes: [UInt8], filename: String?)?
    for (k, start) in starts.dropLast().enumerated() {
        // A part: CRLF, headers, CRLF CRLF, content, CRLF, then the next delimiter.
        guard body.count >= start + 2, Array(body[start..<start + 2]) == crlf,
            let headerEnd = firstIndex(of: crlf + crlf, in: body, from: start + 2)
        else { return nil }
        let headers = String(decoding: body[(start + 2)..<headerEnd], as: UTF8.self)
        let contentEnd = starts[k + 1] - delimiter.count - 2
        guard contentEnd >= headerEnd + 4 else { return nil }
        let content = Array(body[(headerEnd + 4)..<contentEnd])
        let disposition = headers.split(separator: "\r\n").first { $0.lowercased().hasPrefix("content-disposition:") }
        if let filename = disposition.flatMap({ parameter("filename", in: String($0)) }) {
            return (content, filename)
        }
        if fallback == nil && disposition != nil { fallback = (content, nil) }
    }
    // No part is marked as a file: take the first part whose content is an image, if any.
    return fallback
}

/// The boundary parameter of a multipart Content-Type.
func multipartBoundary(_ contentType: String) -> String? {
    guard contentType.lowercased().hasPrefix("multipart/form-data") else { return nil }
    return parameter("boundary", in: contentType).flatMap { $0.isEmpty || $0.count > 200 ? nil : $0 }
}

/// A `name=value` or `name="value"` parameter of a header value.
func parameter(_ name: String, in header: String) -> String? {
    for piece in header.split(separator: ";").dropFirst() {
        let pair = piece.split(separator: "=", maxSplits: 1)
        guard pair.count == 2, pair[0].trimmingCharacters(in: .whitespaces).lowercased() == name else { continue }
        var value = pair[1].trimmingCharacters(in: .whitespaces)
        if value.count >= 2, value.hasPrefix("\""), value.hasSuffix("\"") {
            value = String(value.dropFirst().dropLast())
        }
        return value
    }
    return nil
}

/// The first offset at or after `from` where `needle` starts in `haystack`.
func firstIndex(of needle: [UInt8], in haystack: [UInt8], from: Int) -> Int? {
    guard !needle.isEmpty, haystack.count >= needle.count, from <= haystack.count - needle.count else { return nil }
    return haystack.withUnsafeBufferPointer { h in
        needle.withUnsafeBufferPointer { n in
            var i = from
            let last = h.count - n.count
            while i <= last {
                if h[i] == n[0] {
                    var j = 1
                    while j < n.count && h[i + j] == n[j] { j += 1 }
                    if j == n.count { return i }
                }
                i += 1
            }
            return nil
        }
    }
}
