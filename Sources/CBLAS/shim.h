#include <cblas.h>
/* mallopt: the tensor kernels keep freed activation buffers in the heap (see setComputeThreads). */
#include <malloc.h>

/* OpenBLAS picks its kernels from the CPU model at load time; a virtual CPU it does not know
   ("Intel Xeon Processor" under some hypervisors) falls back to SSE3 "Prescott" kernels even
   when AVX2/AVX-512 are there (measured 1.6x slower). This names the kernels the CPU can run,
   so the tool can restart itself with OPENBLAS_CORETYPE set. */
static inline const char *anomap_blas_core(void) { return openblas_get_corename(); }
static inline const char *anomap_blas_preferred_core(void) {
    /* Haswell (AVX2 + FMA) even where AVX-512 is there: one kernel family on every modern x86
       machine gives the same model bytes everywhere (AVX-512 measured only ~5% faster here). */
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
    return 0;
}
