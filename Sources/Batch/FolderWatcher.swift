import Detection
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Finds the image files of a folder tree as they become complete, for `inspect --watch`.
///
/// With inotify (a local file system), a file is complete when its writer closes it
/// (`IN_CLOSE_WRITE`) or when it is renamed into place (`IN_MOVED_TO`); a file found by a scan
/// (at start, in a new subfolder, after the event queue overflowed) is complete when its
/// modification time is older than the settle time, or later when it is closed. Without inotify
/// (a network share, whose remote writers raise no events, or `--polling`), the tree is scanned
/// every poll interval and a file is complete once its size and time stayed the same for the
/// settle time. Files whose name starts with a dot (the usual temporary name of a rename into
/// place) or that lack an image extension are never read. Each path is reported once.
public final class FolderWatcher {
    /// The watched folder, as given.
    public let root: String
    /// Seconds a file must stay unchanged before a scan calls it complete.
    public let settleSeconds: Double
    /// Seconds between scans when polling.
    public let pollSeconds: Double
    /// Whether inotify events drive the watch (else it polls).
    public private(set) var usesInotify: Bool
    private var descriptor: Int32 = -1
    private var folders = [Int32: String]()  // watch descriptor -> folder path
    private let excluded: [String]
    private var reported: Set<String>
    private var pending = [String: Look]()  // found by a scan, not yet complete
    private var ready = [String]()
    private var lastScan = Date.distantPast

    /// What a scan saw of a file.
    private struct Look: Equatable {
        var size: Int
        var modified: Double
        var since: Date
        static func == (a: Look, b: Look) -> Bool { a.size == b.size && a.modified == b.modified }
    }

    /// Watches `root` (recursively), leaving out `excluding` folders and the paths in
    /// `alreadyReported`; polls when `polling` is set or inotify cannot watch `root`.
    public init(
        root: String, settleSeconds: Double = 2, pollSeconds: Double = 1, polling: Bool = false,
        excluding: [String] = [], alreadyReported: Set<String> = []
    ) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: root, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw PipelineError.input("\(root): no such folder to watch")
        }
        self.root = root
        self.settleSeconds = settleSeconds
        self.pollSeconds = pollSeconds
        excluded = excluding.map { URL(fileURLWithPath: $0).resolvingSymlinksInPath().path }
        reported = alreadyReported
        usesInotify = false
        if !polling && !Self.isNetworkFileSystem(root) {
            descriptor = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
            usesInotify = descriptor >= 0
        }
        scan(root, addingWatches: usesInotify)
    }

    deinit { if descriptor >= 0 { close(descriptor) } }

    /// Waits up to `timeout` seconds for complete files; returns them (possibly none), each once.
    public func next(timeout: Double) -> [String] {
        if ready.isEmpty {
            if usesInotify {
                var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
                let waitMs = pending.isEmpty ? timeout : min(timeout, settleSeconds)
                _ = poll(&poller, 1, Int32(max(0, waitMs * 1000)))
                readEvents()
            } else {
                let wait = min(timeout, max(0, pollSeconds - Date().timeIntervalSince(lastScan)))
                if wait > 0 { Thread.sleep(forTimeInterval: wait) }
            }
        }
        if !usesInotify && Date().timeIntervalSince(lastScan) >= pollSeconds {
            scan(root, addingWatches: false)
        }
        settlePending()
        let found = ready
        ready = []
        return found
    }

    /// Whether `path` is a file a watch reads: an image extension, no hidden component, not excluded.
    func accepts(_ path: String) -> Bool {
        guard ImageFolder.imageExtensions.contains((path as NSString).pathExtension.lowercased()) else {
            return false
        }
        let relative = path.hasPrefix(root) ? String(path.dropFirst(root.count)) : path
        return !relative.split(separator: "/").contains { $0.hasPrefix(".") }
    }

    /// Takes back a reported file that changed while it was read: it is reported again once
    /// complete (its next close, or unchanged for the settle time).
    public func retry(_ path: String) {
        reported.remove(path)
        var info = stat()
        guard stat(path, &info) == 0 else { return }
        pending[path] = Look(
            size: Int(info.st_size), modified: Double(info.st_mtim.tv_sec) + Double(info.st_mtim.tv_nsec) * 1e-9,
            since: Date())
    }

    private func isExcluded(_ folder: String) -> Bool {
        let resolved = URL(fileURLWithPath: folder).resolvingSymlinksInPath().path
        return excluded.contains { resolved == $0 || resolved.hasPrefix($0 + "/") }
    }

    private func report(_ path: String) {
        pending[path] = nil
        guard accepts(path), !reported.contains(path) else { return }
        reported.insert(path)
        ready.append(path)
    }

    /// Walks `folder`: files untouched for the settle time are complete, younger ones pending;
    /// with `addingWatches`, every folder gets an inotify watch first, so no close is missed.
    private func scan(_ folder: String, addingWatches: Bool) {
        lastScan = Date()
        var queue = [folder]
        while let current = queue.popLast() {
            guard !isExcluded(current) else { continue }
            if addingWatches { watch(current) }
            guard let entries = try? FileManager.default.contentsOfDirectory(atPath: current) else { continue }
            for entry in entries.sorted() where !entry.hasPrefix(".") {
                let path = current == "." ? entry : (current as NSString).appendingPathComponent(entry)
                var info = stat()
                guard stat(path, &info) == 0 else { continue }
                if (info.st_mode & S_IFMT) == S_IFDIR {
                    queue.append(path)
                } else if (info.st_mode & S_IFMT) == S_IFREG, accepts(path), !reported.contains(path) {
                    let look = Look(
                        size: Int(info.st_size),
                        modified: Double(info.st_mtim.tv_sec) + Double(info.st_mtim.tv_nsec) * 1e-9, since: Date())
                    if usesInotify && Date().timeIntervalSince1970 - look.modified >= settleSeconds {
                        report(path)  // written before the watch and untouched since: complete
                    } else if pending[path] != look {
                        pending[path] = look
                    }
                }
            }
        }
        settlePending()
    }

    /// Pending files unchanged for the settle time since a scan first saw them so (polling), or
    /// untouched for twice the settle time (watching, when no close event came) are complete.
    private func settlePending() {
        let now = Date()
        for (path, look) in pending.sorted(by: { $0.key < $1.key }) {
            let age = now.timeIntervalSince1970 - look.modified
            let steady = now.timeIntervalSince(look.since)
            // With inotify, a close event is the normal signal; the time stamp only covers a
            // file written before its folder was watched, so it needs longer.
            let settled = usesInotify ? age >= settleSeconds * 2 : steady >= settleSeconds && age >= settleSeconds
            if settled {
                var info = stat()
                guard stat(path, &info) == 0 else {
                    pending[path] = nil
                    continue
                }
                let modified = Double(info.st_mtim.tv_sec) + Double(info.st_mtim.tv_nsec) * 1e-9
                if Int(info.st_size) == look.size && modified == look.modified {
                    report(path)
                } else {
                    pending[path] = Look(size: Int(info.st_size), modified: modified, since: now)
                }
            }
        }
    }

    private func watch(_ folder: String) {
        let mask = UInt32(IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR)
        let wd = inotify_add_watch(descriptor, folder, mask)
        if wd >= 0 { folders[wd] = folder }
    }

    /// Drains the inotify queue.
    private func readEvents() {
        let headerSize = MemoryLayout<inotify_event>.size
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            guard count > 0 else { return }
            var offset = 0
            while offset + headerSize <= count {
                let (wd, mask, nameLength) = buffer.withUnsafeBytes { raw -> (Int32, UInt32, Int) in
                    let event = raw.loadUnaligned(fromByteOffset: offset, as: inotify_event.self)
                    return (event.wd, event.mask, Int(event.len))
                }
                let nameBytes = buffer[(offset + headerSize)..<min(count, offset + headerSize + nameLength)]
                let name = String(decoding: nameBytes.prefix { $0 != 0 }, as: UTF8.self)
                offset += headerSize + nameLength
                if mask & UInt32(IN_Q_OVERFLOW) != 0 {
                    // Events were lost: look at everything again.
                    scan(root, addingWatches: true)
                    continue
                }
                if mask & UInt32(IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF) != 0 {
                    if mask & UInt32(IN_IGNORED) != 0 { folders[wd] = nil }
                    continue
                }
                guard let folder = folders[wd], !name.isEmpty else { continue }
                let path = (folder as NSString).appendingPathComponent(name)
                if mask & UInt32(IN_ISDIR) != 0 {
                    if mask & UInt32(IN_CREATE | IN_MOVED_TO) != 0 && !name.hasPrefix(".") {
                        scan(path, addingWatches: true)
                    }
                } else if mask & UInt32(IN_CLOSE_WRITE | IN_MOVED_TO) != 0 {
                    // An empty file closed is one created ahead of its content ("touch", then write).
                    var info = stat()
                    if stat(path, &info) == 0 && info.st_size == 0 { continue }
                    report(path)
                }
            }
        }
    }

    /// Whether `path` lies on a network file system (from /proc/self/mounts), where remote
    /// writers raise no inotify events.
    static func isNetworkFileSystem(_ path: String) -> Bool {
        let network: Set<String> = [
            "nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "afs", "ceph", "glusterfs", "lustre", "davfs", "ncpfs",
            "fuse.sshfs", "fuse.glusterfs", "fuse.rclone", "fuse.s3fs",
        ]
        guard let mounts = try? String(contentsOfFile: "/proc/self/mounts", encoding: .utf8) else { return false }
        let resolved = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
        var best = (length: -1, type: "")
        for line in mounts.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count >= 3 else { continue }
            let point = fields[1].replacingOccurrences(of: "\\040", with: " ")
            let inside = point == "/" || resolved == point || resolved.hasPrefix(point + "/")
            if inside && point.count > best.length { best = (point.count, String(fields[2])) }
        }
        return network.contains(best.type)
    }
}
