#ifndef ADJOINT_CSWIFTRUNTIME_SHIM_H
#define ADJOINT_CSWIFTRUNTIME_SHIM_H
#include <stddef.h>
// The Swift runtime's strong reference count of a heap object (exported by libswiftCore, which
// every Swift program links; the standard library's `_getRetainCount` calls it). TensorStorage
// uses it to tell tensor values apart from a tape's saved references (TensorStorage.isShared).
size_t swift_retainCount(void *object);
#endif
