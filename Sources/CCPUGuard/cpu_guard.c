// A binary built for one CPU's vectors (the Makefile compiles the Swift kernels for the build
// machine: AVX-512 or AVX2 + FMA) and copied to a CPU without them would die on its first
// vector instruction with SIGILL. This check runs before main, in C compiled for the baseline.
// An AVX-512 binary on a CPU without AVX-512 hands the process over to its AVX2 twin,
// NAME-avx2 beside it (`make portable` builds both); without a twin it stops with one line.
#include "cpu_guard.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
    // ANOMAP_ASSUME_NO_AVX512=1 plays a CPU without AVX-512, to try the hand-over on one with it.
    const char *assume = getenv("ANOMAP_ASSUME_NO_AVX512");
    if (assume && strcmp(assume, "1") == 0) return 0;
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
#else
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
#else
    return 1;
#endif
}

#if defined(__x86_64__) && defined(ANOMAP_ISA_AVX512)
// Replaces the process with this executable's AVX2 twin (its path + "-avx2") when the CPU has
// AVX2 + FMA and the twin exists; returns when it cannot.
static void anomap_hand_over(char **argv) {
    if (!(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))) return;
    char twin[PATH_MAX];
    const char *suffix = "-avx2";
    ssize_t n = readlink("/proc/self/exe", twin, sizeof twin - strlen(suffix) - 1);
    if (n <= 0) return;
    memcpy(twin + n, suffix, strlen(suffix) + 1);
    if (access(twin, X_OK) != 0) return;
    execv(twin, argv);
}
#endif

// glibc calls constructors with main's arguments; the hand-over passes them on unchanged.
__attribute__((constructor)) static void anomap_check_cpu(int argc, char **argv, char **envp) {
    (void)argc;
    (void)envp;
    if (anomap_cpu_runs_build()) return;
#if defined(__x86_64__) && defined(ANOMAP_ISA_AVX512)
    if (argv) anomap_hand_over(argv);
#else
    (void)argv;
#endif
    fprintf(stderr,
            "anomap: this build's kernels use %s instructions, which this CPU does not have; "
            "rebuild it on this machine with `make release` (or build both with `make portable`)\n",
            anomap_build_isa());
    _exit(2);
}
