#ifndef COHORT_MPI_SHIM_H
#define COHORT_MPI_SHIM_H
#include <mpi.h>

/* OpenMPI defines its predefined handles as macros over addresses of globals, which Swift cannot
   import; these functions hand them over. */
static inline MPI_Comm cohort_mpi_comm_world(void) { return MPI_COMM_WORLD; }
static inline MPI_Datatype cohort_mpi_float(void) { return MPI_FLOAT; }
static inline MPI_Datatype cohort_mpi_double(void) { return MPI_DOUBLE; }
static inline MPI_Datatype cohort_mpi_byte(void) { return MPI_BYTE; }
static inline MPI_Datatype cohort_mpi_int64(void) { return MPI_INT64_T; }
static inline MPI_Datatype cohort_mpi_uint16(void) { return MPI_UINT16_T; }
static inline MPI_Op cohort_mpi_sum(void) { return MPI_SUM; }
static inline MPI_Op cohort_mpi_max(void) { return MPI_MAX; }
static inline MPI_Op cohort_mpi_min(void) { return MPI_MIN; }
static inline void *cohort_mpi_in_place(void) { return MPI_IN_PLACE; }
static inline MPI_Status *cohort_mpi_status_ignore(void) { return MPI_STATUS_IGNORE; }
static inline MPI_Status *cohort_mpi_statuses_ignore(void) { return MPI_STATUSES_IGNORE; }
static inline MPI_Request cohort_mpi_request_null(void) { return MPI_REQUEST_NULL; }
static inline MPI_Info cohort_mpi_info_null(void) { return MPI_INFO_NULL; }
static inline MPI_Win cohort_mpi_win_null(void) { return MPI_WIN_NULL; }
static inline int cohort_mpi_comm_type_shared(void) { return MPI_COMM_TYPE_SHARED; }
static inline MPI_Errhandler cohort_mpi_errors_return(void) { return MPI_ERRORS_RETURN; }
static inline MPI_Errhandler cohort_mpi_errors_are_fatal(void) { return MPI_ERRORS_ARE_FATAL; }
static inline int cohort_mpi_thread_single(void) { return MPI_THREAD_SINGLE; }
static inline int cohort_mpi_thread_multiple(void) { return MPI_THREAD_MULTIPLE; }
#endif
