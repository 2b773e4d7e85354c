import Foundation
import SafeFiles
import Tensors

/// A checkpoint could not be read or written: the file and the reason, as for any file.
public typealias CheckpointError = FileError

/// Named Float32 tensors plus string metadata in the safetensors format
/// (8-byte little-endian header length, JSON header, raw little-endian data).
public struct SafeTensors: Sendable {
    /// Tensors by name.
    public var tensors: [String: Tensor]
    /// The header's `__metadata__` strings.
    public var metadata: [String: String]

    /// Largest header accepted; real headers are kilobytes.
    public static let maxHeaderBytes = 16 << 20

    /// Creates a checkpoint in memory.
    public init(tensors: [String: Tensor] = [:], metadata: [String: String] = [:]) {
        self.tensors = tensors
        self.metadata = metadata
    }

    /// Reads and validates a safetensors file.
    public static func read(contentsOf path: String, maxBytes: Int = 2 << 30) throws -> SafeTensors {
        let bytes: [UInt8]
        do {
            bytes = try readFile(path, maxBytes: maxBytes)
        } catch let error as FileError {
            throw CheckpointError(path: path, reason: error.reason)
        }
        return try decode(bytes, path: path)
    }

    /// Parses safetensors bytes. Every size and offset is checked before anything is allocated
    /// from it; only F32 tensors are accepted. `path` names the source in errors.
    public static func decode(_ bytes: [UInt8], path: String = "<memory>") throws -> SafeTensors {
        func fail(_ reason: String) -> CheckpointError { CheckpointError(path: path, reason: reason) }
        guard bytes.count >= 8 else { throw fail("not a safetensors file (shorter than its 8-byte header length)") }
        var headerLength = 0
        for i in 0..<8 { headerLength |= Int(bytes[i]) << (8 * i) }
        guard headerLength > 1, headerLength <= maxHeaderBytes, headerLength <= bytes.count - 8 else {
            throw fail(
                "not a safetensors file (header length \(headerLength) does not fit the file of \(bytes.count) bytes)")
        }
        let headerBytes = Data(bytes[8..<(8 + headerLength)])
        guard let json = try? JSONSerialization.jsonObject(with: headerBytes), let header = json as? [String: Any]
        else {
            throw fail("not a safetensors file (header is not a JSON object)")
        }
        let bodyStart = 8 + headerLength
        let bodyCount = bytes.count - bodyStart
        var result = SafeTensors()
        for (name, value) in header {
            if name == "__metadata__" {
                guard let meta = value as? [String: Any] else { throw fail("__metadata__ is not an object") }
                for (k, v) in meta {
                    guard let s = v as? String else { throw fail("metadata value for \(k) is not a string") }
                    result.metadata[k] = s
                }
                continue
            }
            guard let entry = value as? [String: Any], let dtype = entry["dtype"] as? String,
                let shapeValues = entry["shape"] as? [Any], let offsets = entry["data_offsets"] as? [Any],
                offsets.count == 2
            else {
                throw fail("tensor \(name) has a malformed header entry")
            }
            guard dtype == "F32" else { throw fail("tensor \(name) has dtype \(dtype); only F32 is supported") }
            var shape = [Int]()
            var elements = 1
            for s in shapeValues {
                guard let d = (s as? NSNumber)?.intValue, d >= 0, d <= Int(Int32.max) else {
                    throw fail("tensor \(name) has an invalid shape")
                }
                let (product, overflow) = elements.multipliedReportingOverflow(by: d)
                guard !overflow else { throw fail("tensor \(name) shape overflows") }
                elements = product
                shape.append(d)
            }
            guard let begin = (offsets[0] as? NSNumber)?.intValue, let end = (offsets[1] as? NSNumber)?.intValue,
                begin >= 0, end >= begin, end <= bodyCount
            else {
                throw fail("tensor \(name) has data offsets outside the file (truncated?)")
            }
            guard end - begin == elements * 4 else {
                throw fail("tensor \(name) has \(end - begin) bytes for \(elements) F32 elements")
            }
            var storage = [Float](repeating: 0, count: elements)
            storage.withUnsafeMutableBytes { dst in
                bytes.withUnsafeBytes { src in
                    dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: src[(bodyStart + begin)..<(bodyStart + end)]))
                }
            }
            result.tensors[name] = Tensor(shape: shape, storage: storage)
        }
        return result
    }

    /// The checkpoint as safetensors bytes; tensors are laid out in sorted name order so the
    /// same content always gives the same bytes.
    public func encoded() throws -> [UInt8] {
        var header = [String: Any]()
        var offset = 0
        let names = tensors.keys.sorted()
        for name in names {
            guard let t = tensors[name] else { continue }
            header[name] = ["dtype": "F32", "shape": t.shape, "data_offsets": [offset, offset + 4 * t.count]]
            offset += 4 * t.count
        }
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var json = Array(try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys]))
        while (json.count % 8) != 0 { json.append(0x20) }
        var out = [UInt8]()
        out.reserveCapacity(8 + json.count + offset)
        for i in 0..<8 { out.append(UInt8((json.count >> (8 * i)) & 0xFF)) }
        out.append(contentsOf: json)
        for name in names {
            tensors[name]?.storage.withUnsafeBytes { out.append(contentsOf: $0) }
        }
        return out
    }

    /// Writes the checkpoint atomically (temporary file, then rename).
    public func write(to path: String) throws {
        let bytes = try encoded()
        do {
            try writeFileAtomically(bytes, to: path)
        } catch let error as FileError {
            throw CheckpointError(path: path, reason: error.reason)
        }
    }

    /// The tensor called `name`, checked against an expected shape.
    public func tensor(_ name: String, shape: [Int]? = nil, path: String = "checkpoint") throws -> Tensor {
        guard let t = tensors[name] else { throw CheckpointError(path: path, reason: "missing tensor \(name)") }
        if let shape, t.shape != shape {
            throw CheckpointError(path: path, reason: "tensor \(name) has shape \(t.shape), expected \(shape)")
        }
        return t
    }
}
