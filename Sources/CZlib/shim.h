#ifndef ADJOINT_CZLIB_SHIM_H
#define ADJOINT_CZLIB_SHIM_H
// Debian's zlib1g-dev: gzip-compressed text traces.
#include <zlib.h>
#endif
