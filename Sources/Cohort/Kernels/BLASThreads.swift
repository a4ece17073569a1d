import CBLAS

/// One BLAS thread per worker when several share the machine under mpirun; all cores for a lone process.
public func configureBLASThreads(worldSize: Int) {
    if worldSize > 1 { openblas_set_num_threads(1) }
}
