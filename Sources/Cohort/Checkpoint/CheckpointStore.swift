import CPosix
import CZlib
import Foundation

/// The checkpoints of a run under `<dir>/checkpoints/`: one directory per step, and `latest`
/// naming the newest complete one.
///
/// A checkpoint appears whole or not at all: its files are written and fsynced under a temporary
/// name, a manifest with every file's CRC-32 is written last, the directory is renamed into place
/// and `latest` is replaced the same way. Older checkpoints beyond `keep` are removed only then.
public struct CheckpointStore {
    public let root: URL
    public let keep: Int

    public init(runDirectory: String, keep: Int) {
        root = URL(fileURLWithPath: runDirectory).appendingPathComponent("checkpoints")
        self.keep = keep
    }

    public static let manifestName = "manifest.json"

    /// Makes the checkpoint directory and checks that checkpoints can be written there, so that a
    /// run that could not save its work stops before it starts; removes the temporary directories
    /// of checkpoints whose writer was killed (`.tmp-<step>-<pid>` of a process no longer running).
    ///
    /// With `lockKey` (training), takes the run directory's `RunLock` first, naming the directory
    /// as `lockKey` if another run holds it: the temporaries are then known to be no live writer's,
    /// on whichever host shares the directory.
    @discardableResult
    public func prepare(lockKey: String? = nil) throws -> RunLock? {
        let fm = FileManager.default
        try createDirectories(root, named: "checkpoint directory")
        var isDirectory: ObjCBool = false
        guard fm.fileExists(atPath: root.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw CohortError("\(root.path): not a directory, so no checkpoints can be written there (checkpoint.dir)")
        }
        guard access(root.path, W_OK | X_OK) == 0 else {
            throw CohortError("\(root.path): cannot write checkpoints there, checkpoint.dir (\(String(cString: strerror(errno))))")
        }
        let latest = root.appendingPathComponent("latest")
        if fm.fileExists(atPath: latest.path, isDirectory: &isDirectory), isDirectory.boolValue {
            throw CohortError("\(latest.path): a directory where the pointer to the newest checkpoint goes (remove it)")
        }
        let lock = try lockKey.flatMap { try RunLock.acquire(root.deletingLastPathComponent(), key: $0) }
        for name in (try? fm.contentsOfDirectory(atPath: root.path)) ?? [] where name.hasPrefix(".tmp-") {
            guard let pid = name.split(separator: "-").last.flatMap({ Int32($0) }), pid != getpid(),
                  kill(pid, 0) != 0 && errno == ESRCH else { continue }
            try? fm.removeItem(at: root.appendingPathComponent(name))
        }
        return lock
    }

    /// Writes the files of the checkpoint of `step` and makes it the latest. With
    /// `replacingEarlierRun` (a fresh run's first checkpoint), the checkpoints of the run that used
    /// this directory before are removed, once the new one is complete.
    public func write(step: Int, files: [(name: String, data: Data)], replacingEarlierRun: Bool = false) throws {
        let fm = FileManager.default
        try createDirectories(root, named: "checkpoint directory")
        let temporary = root.appendingPathComponent(".tmp-\(step)-\(getpid())")
        try? fm.removeItem(at: temporary)
        do {
            try fm.createDirectory(at: temporary, withIntermediateDirectories: false)
            var manifest: [String: [String: Any]] = [:]
            for file in files {
                try writeDurably(file.data, to: temporary.appendingPathComponent(file.name))
                manifest[file.name] = ["crc32": crc32Of(file.data), "bytes": file.data.count]
            }
            let manifestData = try JSONSerialization.data(withJSONObject: ["step": step, "files": manifest],
                                                          options: [.sortedKeys, .prettyPrinted])
            try writeDurably(manifestData, to: temporary.appendingPathComponent(CheckpointStore.manifestName))
            try syncDirectory(temporary)
            let final = root.appendingPathComponent(String(step))
            if fm.fileExists(atPath: final.path) {
                // A run resumed from an older checkpoint rewrites this step: swap the two atomically,
                // so that the step always has a complete checkpoint.
                guard cohort_rename_exchange(temporary.path, final.path) == 0 else {
                    throw CohortError("\(final.path): cannot replace the checkpoint (\(String(cString: strerror(errno))))")
                }
                try? fm.removeItem(at: temporary)
            } else {
                try fm.moveItem(at: temporary, to: final)
            }
            try syncDirectory(root)
        } catch {
            try? fm.removeItem(at: temporary)
            let earlier = completeSteps().filter { $0 != step }.max()
            throw CohortError("\(root.path): cannot write the checkpoint of step \(step) (\(reason(error))); "
                              + (earlier.map { "the checkpoint of step \($0) is intact" } ?? "there is no earlier checkpoint"))
        }
        let latestTemporary = root.appendingPathComponent(".latest.tmp")
        do {
            try writeDurably(Data("\(step)\n".utf8), to: latestTemporary)
            if rename(latestTemporary.path, root.appendingPathComponent("latest").path) != 0 {
                throw CohortError("cannot replace \(root.appendingPathComponent("latest").path): \(String(cString: strerror(errno)))")
            }
            try syncDirectory(root)
        } catch {
            try? fm.removeItem(at: latestTemporary)
            let pointed = (try? String(contentsOf: root.appendingPathComponent("latest"), encoding: .utf8))
                .flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
            throw CohortError("\(root.path): the checkpoint of step \(step) is written, but 'latest' "
                              + (pointed.map { "still names step \($0)" } ?? "names no step") + " (\(reason(error))); "
                              + "--resume \(root.appendingPathComponent(String(step)).path) continues from it")
        }
        prune(newest: step, all: replacingEarlierRun)
    }

    /// Removes all but the newest `keep` complete checkpoints (all but `newest` with `all`).
    private func prune(newest: Int, all: Bool) {
        let steps = completeSteps().filter { $0 != newest }.sorted(by: >)
        for step in steps.dropFirst(all ? 0 : max(keep - 1, 0)) {
            try? FileManager.default.removeItem(at: root.appendingPathComponent(String(step)))
        }
    }

    /// Steps that have a checkpoint directory with a manifest.
    public func completeSteps() -> [Int] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: root.path)) ?? []
        return names.compactMap(Int.init).filter {
            FileManager.default.fileExists(atPath: root.appendingPathComponent("\($0)/\(CheckpointStore.manifestName)").path)
        }
    }

    /// The directory `latest` points to, or nil when there is no complete checkpoint.
    ///
    /// If `latest` is unreadable or names a step without a complete checkpoint (it was removed by
    /// hand), the newest complete checkpoint is used instead: a directory has its manifest only once
    /// every file in it was written. `note` is told so (after a resume from an earlier checkpoint,
    /// the newest may be the abandoned branch's), and of `choosing`, the option that picks another.
    public func latestDirectory(choosing: String = "--resume DIR", note: (String) -> Void = { _ in }) throws -> URL? {
        let pointer = root.appendingPathComponent("latest")
        let text = try? String(contentsOf: pointer, encoding: .utf8)
        let named = text.flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        if let step = named, FileManager.default.fileExists(atPath: root.appendingPathComponent("\(step)/\(CheckpointStore.manifestName)").path) {
            return root.appendingPathComponent(String(step))
        }
        guard let newest = completeSteps().max().map({ root.appendingPathComponent(String($0)) }) else { return nil }
        let why = text == nil ? "is missing or unreadable" : named.map { "names step \($0), which has no complete checkpoint" } ?? "does not hold a step"
        note("note: \(pointer.path) \(why); taking the newest complete checkpoint, \(newest.path) (pass \(choosing) to choose another)")
        return newest
    }

    /// The error for a file a checkpoint needs that its manifest does not list (the file may be
    /// there, but only what the manifest lists is verified).
    public static func unlisted(_ name: String, in directory: URL) -> CohortError {
        CohortError("\(directory.appendingPathComponent(manifestName).path): does not list \(name), which the checkpoint needs")
    }

    /// Reads every file of a checkpoint directory, verified against its manifest.
    public static func readVerified(_ directory: URL) throws -> [String: Data] {
        let manifestURL = directory.appendingPathComponent(manifestName)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory.path, isDirectory: &isDirectory) else {
            throw CohortError("\(directory.path): no such checkpoint directory")
        }
        guard isDirectory.boolValue else {
            throw CohortError("\(directory.path): not a checkpoint directory (a checkpoint is a directory such as checkpoints/500 holding \(manifestName))")
        }
        guard let manifestData = FileManager.default.contents(atPath: manifestURL.path) else {
            let fm = FileManager.default
            let names = (try? fm.contentsOfDirectory(atPath: directory.path)) ?? []
            if names.contains("checkpoints") || names.contains("latest") {
                let checkpoints = names.contains("latest") ? directory : directory.appendingPathComponent("checkpoints")
                throw CohortError("\(directory.path): a run's directory, not one of its checkpoints: give one of \(checkpoints.path)/<step>, or auto")
            }
            throw CohortError("\(directory.path): incomplete checkpoint (no \(manifestName))")
        }
        guard let manifest = (try? JSONSerialization.jsonObject(with: manifestData)) as? [String: Any],
              let files = manifest["files"] as? [String: [String: Any]] else {
            throw CohortError("\(manifestURL.path): damaged manifest")
        }
        var result: [String: Data] = [:]
        for (name, entry) in files.sorted(by: { $0.key < $1.key }) {
            let url = directory.appendingPathComponent(name)
            guard let data = FileManager.default.contents(atPath: url.path) else {
                throw CohortError("\(url.path): missing from the checkpoint")
            }
            guard let expected = entry["crc32"] as? Int, crc32Of(data) == expected else {
                throw CohortError("\(url.path): checksum mismatch, the file is damaged")
            }
            result[name] = data
        }
        return result
    }
}

func crc32Of(_ data: Data) -> Int {
    data.withUnsafeBytes { raw in
        Int(crc32(0, raw.bindMemory(to: UInt8.self).baseAddress, uInt(raw.count)))
    }
}

/// The cause of a file-system error in a few words (`Not a directory`), for one-line messages.
/// `mkdir -p`, with an error that says why (Foundation's does not, on Linux): the `what` of checkpoint.dir.
func createDirectories(_ url: URL, named what: String) throws {
    var missing: [URL] = []
    var current = url
    while !FileManager.default.fileExists(atPath: current.path) {
        missing.append(current)
        current.deleteLastPathComponent()
    }
    for directory in missing.reversed() where mkdir(directory.path, 0o755) != 0 && errno != EEXIST {
        throw CohortError("\(directory.path): cannot create the \(what), checkpoint.dir (\(String(cString: strerror(errno))))")
    }
}

func reason(_ error: Error) -> String {
    if let error = error as? CohortError { return error.message }
    let ns = error as NSError
    if let underlying = ns.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
        return String(cString: strerror(Int32(underlying.code)))
    }
    return ns.localizedDescription
}

/// Writes `data` to `url` and fsyncs it before returning.
func writeDurably(_ data: Data, to url: URL) throws {
    let fd = open(url.path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    guard fd >= 0 else { throw CohortError("cannot create \(url.lastPathComponent): \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    try data.withUnsafeBytes { raw in
        var offset = 0
        while offset < raw.count {
            let n = Foundation.write(fd, raw.baseAddress! + offset, raw.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                throw CohortError("cannot write \(url.lastPathComponent): \(String(cString: strerror(errno)))")
            }
            offset += n
        }
    }
    guard fsync(fd) == 0 else { throw CohortError("cannot sync \(url.lastPathComponent): \(String(cString: strerror(errno)))") }
}

func syncDirectory(_ url: URL) throws {
    let fd = open(url.path, O_RDONLY | O_DIRECTORY)
    guard fd >= 0 else { throw CohortError("\(url.path): cannot open the directory to sync it") }
    defer { close(fd) }
    _ = fsync(fd)
}
