#ifndef ANOMAP_PREFETCH_H
#define ANOMAP_PREFETCH_H

/// Asks for the cache line holding `p` in L2 (and L3), without waiting for it: a hint only, it
/// never faults. Inline, so that the Swift kernels' loops get the bare instruction (prefetcht1
/// on x86-64).
static inline void anomap_prefetch_l2(const void *p) { __builtin_prefetch(p, 0, 2); }

#endif
