import CBLAS
import Foundation

/// Which OpenBLAS kernels run, and the restart that fixes a wrong choice.
public enum BLASKernels {
    /// The kernel family OpenBLAS chose at load time ("Haswell", "Prescott", ...).
    public static var current: String { anomap_blas_core().map { String(cString: $0) } ?? "unknown" }

    /// The family to run instead, when OpenBLAS chose another (it takes some virtual CPUs for
    /// SSE3-only ones): Haswell on every AVX2 CPU, so models train to the same bytes on every
    /// such machine; nil when its choice is that one, or OPENBLAS_CORETYPE was set by hand.
    public static var better: String? {
        guard ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] == nil,
            let preferred = anomap_blas_preferred_core().map({ String(cString: $0) })
        else { return nil }
        return current.caseInsensitiveCompare(preferred) == .orderedSame ? nil : preferred
    }

    /// Restarts the process with OPENBLAS_CORETYPE set to `better`, which OpenBLAS reads only
    /// while loading; returns (doing nothing) when no restart is needed or it fails.
    public static func restartWithBetterKernels() {
        guard let better else { return }
        setenv("OPENBLAS_CORETYPE", better, 1)
        let arguments = CommandLine.arguments
        var argv = arguments.map { strdup($0) } + [nil]
        execv("/proc/self/exe", &argv)
        // exec failed (no /proc): carry on with the slower kernels.
        unsetenv("OPENBLAS_CORETYPE")
        argv.forEach { free($0) }
    }
}
