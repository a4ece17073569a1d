import Foundation

/// Checks at start-up that every worker runs the same binary with the same config, so that a
/// mismatched deployment is an error naming the rank rather than a silent divergence or a hang.
public enum RunIdentity {
    /// FNV-1a, 64 bits: a fingerprint, not a security measure.
    static func fingerprint(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return hash
    }

    static func fingerprint(_ data: Data) -> UInt64 { data.withUnsafeBytes { fingerprint($0) } }

    /// The running executable's fingerprint (0 if it cannot be read).
    static let binaryFingerprint: UInt64 = {
        guard let data = FileManager.default.contents(atPath: "/proc/self/exe") else { return 0 }
        return fingerprint(data)
    }()

    /// Throws, naming the first rank whose binary or config differs from rank 0's.
    public static func verify(configText: String, configPath: String, communicator: Communicator) throws {
        guard communicator.worldSize > 1 else { return }
        let mine = [binaryFingerprint, fingerprint(Data(configText.utf8))]
        let all = try communicator.allgather(mine)
        for (rank, theirs) in all.enumerated() where rank > 0 {
            if theirs[0] != all[0][0] {
                throw CohortError("rank \(rank) runs a different cohort binary than rank 0: install the same build on every host")
            }
            if theirs[1] != all[0][1] {
                throw CohortError("\(configPath): rank \(rank) read a different config than rank 0: every host needs the same file")
            }
        }
    }
}
