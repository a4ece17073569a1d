import Foundation

/// What the launcher (mpirun, PMIx, PMI, Slurm) tells each process in its environment, readable
/// before MPI starts.
public enum LauncherEnvironment {
    /// This process's rank, or 0 for a lone process.
    public static var rank: Int { firstInteger(["OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "SLURM_PROCID"]) ?? 0 }

    /// The workers started on this node, or 1 for a lone process.
    public static var workersOnThisNode: Int {
        max(1, firstInteger(["OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "SLURM_NTASKS_PER_NODE"]) ?? 1)
    }

    /// The first of `names` set to a whole number.
    private static func firstInteger(_ names: [String]) -> Int? {
        let environment = ProcessInfo.processInfo.environment
        return names.lazy.compactMap { environment[$0].flatMap { Int($0) } }.first
    }
}
