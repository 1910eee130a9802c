#ifndef ADJOINT_CBLAS_SHIM_H
#define ADJOINT_CBLAS_SHIM_H
// Debian's libopenblas-dev installs cblas.h (OpenBLAS's, through the alternatives system),
// which also declares openblas_set_num_threads / openblas_get_num_threads.
#include <cblas.h>
#endif
