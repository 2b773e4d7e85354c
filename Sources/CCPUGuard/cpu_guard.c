// A binary built for one CPU's vectors (the Makefile compiles the Swift kernels for the build
// machine: AVX-512 or AVX2 + FMA) and copied to a CPU without them would die on its first
// vector instruction with SIGILL. This check runs before main, in C compiled for the baseline,
// and stops the process with one line instead.
#include "cpu_guard.h"

#include <stdio.h>
#include <unistd.h>

const char *anomap_build_isa(void) {
#if defined(ANOMAP_ISA_AVX512)
    return "avx512";
#elif defined(ANOMAP_ISA_AVX2)
    return "avx2";
#else
    return "baseline";
#endif
}

int anomap_cpu_runs_build(void) {
#if defined(__x86_64__) && (defined(ANOMAP_ISA_AVX512) || defined(ANOMAP_ISA_AVX2))
    __builtin_cpu_init();
#if defined(ANOMAP_ISA_AVX512)
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
#else
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
#else
    return 1;
#endif
}

__attribute__((constructor)) static void anomap_check_cpu(void) {
    if (anomap_cpu_runs_build()) return;
    fprintf(stderr,
            "anomap: this build's kernels use %s instructions, which this CPU does not have; "
            "rebuild it on this machine with `make release`\n",
            anomap_build_isa());
    _exit(2);
}
