import Detection
import Foundation
import Imaging

/// Files to process, found in files and folders given on the command line.
public enum ImageFolder {
    /// Extensions that announce an image: a file with one of these that is not a PNG or JPEG
    /// is reported as an error rather than skipped.
    static let imageExtensions: Set<String> = ["png", "jpg", "jpeg", "jpe", "jfif"]

    /// Image files under `paths`, recursively, sorted; PNG/JPEG recognized by content.
    /// Files named like images are included even when their content is not an image, so the
    /// caller reports them. Throws when a path does not exist or a folder holds no images.
    public static func images(in paths: [String]) throws -> [String] {
        var found = [String]()
        let fm = FileManager.default
        for path in paths {
            var isDirectory: ObjCBool = false
            guard fm.fileExists(atPath: path, isDirectory: &isDirectory) else {
                throw PipelineError.input("\(path): no such file or folder")
            }
            if !isDirectory.boolValue {
                found.append(path)
                continue
            }
            guard let walker = fm.enumerator(atPath: path) else {
                throw PipelineError.input("\(path): cannot list folder")
            }
            var here = [String]()
            for case let relative as String in walker {
                let full = (path as NSString).appendingPathComponent(relative)
                var sub: ObjCBool = false
                guard fm.fileExists(atPath: full, isDirectory: &sub), !sub.boolValue else { continue }
                if isImage(full) { here.append(full) }
            }
            if here.isEmpty {
                var hint = ""
                for sub in ["train/good", "good"]
                where fm.fileExists(atPath: (path as NSString).appendingPathComponent(sub)) {
                    hint = " — did you mean \((path as NSString).appendingPathComponent(sub))?"
                    break
                }
                if hint.isEmpty, let entries = try? fm.contentsOfDirectory(atPath: path), entries.isEmpty {
                    hint = " (the folder is empty)"
                }
                throw PipelineError.input("no images in \(path)\(hint)")
            }
            found += here.sorted()
        }
        return found
    }

    /// Whether a file is a PNG/JPEG by its first bytes, or is named like one.
    static func isImage(_ path: String) -> Bool {
        if imageExtensions.contains((path as NSString).pathExtension.lowercased()) { return true }
        guard let handle = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? handle.close() }
        let head = (try? handle.read(upToCount: 8)) ?? Data()
        return ImageFormat.sniff([UInt8](head)) != nil
    }
}

extension ImageFolder {
    /// Sizes (width, height) of up to `count` of `paths`, evenly spread over the sorted list;
    /// unreadable files are left out (training reports them).
    public static func sampledSizes(_ paths: [String], count: Int = 16) -> [(width: Int, height: Int)] {
        let sorted = paths.sorted()
        guard !sorted.isEmpty else { return [] }
        let picks = Set((0..<min(count, sorted.count)).map { $0 * sorted.count / min(count, sorted.count) })
        return picks.sorted().compactMap { i in
            // A JPEG is decoded at 1/8 (DCT scaling) just to learn its oriented full size.
            (try? ImageCodec.readReporting(contentsOf: sorted[i], options: DecodeOptions(minimumSide: 1)))
                .map { (width: $0.fullWidth, height: $0.fullHeight) }
        }
    }
}
