#ifndef ADJOINT_CZSTD_SHIM_H
#define ADJOINT_CZSTD_SHIM_H
// Debian's libzstd-dev: streaming decompression of libCacheSim's .zst traces.
#include <zstd.h>
#endif
