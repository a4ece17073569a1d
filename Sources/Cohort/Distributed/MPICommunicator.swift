import CMPI
import Foundation

/// The world of `mpirun`'s workers, or a world of one when the binary runs alone (MPI's singleton start).
public final class MPICommunicator: Communicator {
    public let rank: Int
    public let worldSize: Int
    private let comm: MPI_Comm

    /// Starts MPI. Call once per process, before any other MPI call.
    public init() {
        var provided: Int32 = 0
        MPI_Init_thread(nil, nil, cohort_mpi_thread_single(), &provided)
        comm = cohort_mpi_comm_world()
        var r: Int32 = 0, n: Int32 = 0
        MPI_Comm_rank(comm, &r)
        MPI_Comm_size(comm, &n)
        rank = Int(r)
        worldSize = Int(n)
    }

    public func allreduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws {
        if worldSize == 1 { return }
        try check(MPI_Allreduce(cohort_mpi_in_place(), buffer, Int32(count), cohort_mpi_float(), cohort_mpi_sum(), comm), "allreduce")
    }

    public func allreduceSum(_ buffer: UnsafeMutablePointer<Double>, count: Int) throws {
        if worldSize == 1 { return }
        try check(MPI_Allreduce(cohort_mpi_in_place(), buffer, Int32(count), cohort_mpi_double(), cohort_mpi_sum(), comm), "allreduce")
    }

    public func broadcast(_ buffer: UnsafeMutableRawPointer, byteCount: Int, root: Int) throws {
        if worldSize == 1 { return }
        try check(MPI_Bcast(buffer, Int32(byteCount), cohort_mpi_byte(), Int32(root), comm), "broadcast")
    }

    public func barrier() throws {
        if worldSize == 1 { return }
        try check(MPI_Barrier(comm), "barrier")
    }

    /// Ends the whole job at once: every worker exits with `code`.
    public func abort(code: Int32) -> Never {
        MPI_Abort(comm, code)
        exit(code)
    }

    public func finalize() {
        MPI_Finalize()
    }

    private func check(_ status: Int32, _ operation: String) throws {
        if status != 0 { throw CohortError("collective \(operation) failed on rank \(rank) (MPI error \(status))") }
    }
}
