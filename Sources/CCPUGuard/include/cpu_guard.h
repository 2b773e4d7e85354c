#ifndef ANOMAP_CPU_GUARD_H
#define ANOMAP_CPU_GUARD_H

/// The vector instructions the build's Swift kernels were compiled for ("avx512", "avx2" or
/// "baseline"), as the Makefile passes them (-Xcc -DANOMAP_ISA_AVX512 / -DANOMAP_ISA_AVX2).
const char *anomap_build_isa(void);

/// 1 when this CPU has the instructions `anomap_build_isa` names, else 0.
int anomap_cpu_runs_build(void);

#endif
