#ifndef ANOMAP_VECTOR_OPS_H
#define ANOMAP_VECTOR_OPS_H

// Inline helpers for the Swift kernels, compiled into them with the kernels' own vector flags
// (the header is read by the Swift compiler, not built with this target's baseline flags).

/// Asks for the cache line holding `p` in L2 (and L3), without waiting for it: a hint only, it
/// never faults (prefetcht1 on x86-64).
static inline void anomap_prefetch_l2(const void *p) { __builtin_prefetch(p, 0, 2); }

/// Sixteen and eight floats; Swift imports them as SIMD16<Float> and SIMD8<Float>.
typedef float anomap_float16 __attribute__((ext_vector_type(16)));
typedef float anomap_float8 __attribute__((ext_vector_type(8)));

/// min(max(x, low), high) lane by lane: one vmaxps and one vminps. Swift's own `pointwiseMax`
/// stays a lane loop inside the generic kernels. With `low` second, max(-0, +0) is +0, as
/// Swift's `max(x, 0)` gives (only NaN lanes differ: they become `low`).
static inline anomap_float16 anomap_clamp16(anomap_float16 x, anomap_float16 low, anomap_float16 high) {
    return __builtin_elementwise_min(__builtin_elementwise_max(x, low), high);
}
static inline anomap_float8 anomap_clamp8(anomap_float8 x, anomap_float8 low, anomap_float8 high) {
    return __builtin_elementwise_min(__builtin_elementwise_max(x, low), high);
}

#endif
