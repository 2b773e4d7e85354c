import CCPUGuard

/// The vector instructions this build's kernels were compiled for, as the start-up check in
/// `CCPUGuard` knows them: a binary copied to a CPU without them stops there with one line
/// instead of dying on its first vector instruction.
public enum BuildInstructions {
    /// "avx512", "avx2" or "baseline".
    public static var name: String { String(cString: anomap_build_isa()) }

    /// Whether this CPU has them (always true in a running process: the check stops it otherwise).
    public static var runHere: Bool { anomap_cpu_runs_build() == 1 }
}
