#include <cblas.h>
/* mallopt: the tensor kernels keep freed activation buffers in the heap (see setComputeThreads). */
#include <malloc.h>
