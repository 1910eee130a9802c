#ifndef ADJOINT_CMPI_SHIM_H
#define ADJOINT_CMPI_SHIM_H
// Debian's libopenmpi-dev (Open MPI): the communicator of AdjointDistributed.
// Open MPI defines its handles (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM, ...) as casts of the addresses of
// global objects, which Swift cannot import as macros; these functions return them.
#include <mpi.h>

static inline MPI_Comm adjoint_mpi_comm_world(void) { return MPI_COMM_WORLD; }
static inline MPI_Comm adjoint_mpi_comm_null(void) { return MPI_COMM_NULL; }
static inline MPI_Datatype adjoint_mpi_float(void) { return MPI_FLOAT; }
static inline MPI_Datatype adjoint_mpi_double(void) { return MPI_DOUBLE; }
static inline MPI_Datatype adjoint_mpi_int64(void) { return MPI_INT64_T; }
static inline MPI_Datatype adjoint_mpi_int32(void) { return MPI_INT32_T; }
static inline MPI_Datatype adjoint_mpi_int16(void) { return MPI_INT16_T; }
static inline MPI_Datatype adjoint_mpi_uint64(void) { return MPI_UINT64_T; }
static inline MPI_Datatype adjoint_mpi_byte(void) { return MPI_BYTE; }
static inline MPI_Op adjoint_mpi_sum(void) { return MPI_SUM; }
static inline MPI_Op adjoint_mpi_max(void) { return MPI_MAX; }
static inline MPI_Op adjoint_mpi_min(void) { return MPI_MIN; }
static inline MPI_Op adjoint_mpi_op_null(void) { return MPI_OP_NULL; }
static inline MPI_Request adjoint_mpi_request_null(void) { return MPI_REQUEST_NULL; }
static inline MPI_Status *adjoint_mpi_status_ignore(void) { return MPI_STATUS_IGNORE; }
static inline void *adjoint_mpi_in_place(void) { return MPI_IN_PLACE; }
static inline MPI_Errhandler adjoint_mpi_errors_return(void) { return MPI_ERRORS_RETURN; }

#endif
