import CBLAS
import Foundation

/// Which OpenBLAS kernels run, and the restart that fixes a wrong choice.
public enum BLASKernels {
    /// The kernel family OpenBLAS chose at load time ("Haswell", "Prescott", ...).
    public static var current: String { anomap_blas_core().map { String(cString: $0) } ?? "unknown" }

    /// The best family this CPU can run, when OpenBLAS has chosen an older one (it does for
    /// virtual CPUs it does not recognize); nil when its choice is right or it was told one.
    public static var better: String? {
        guard ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] == nil,
            let preferred = anomap_blas_preferred_core().map({ String(cString: $0) })
        else { return nil }
        let vector = ["Haswell", "Zen", "SkylakeX", "CooperLake", "SapphireRapids", "Excavator"]
        return vector.contains(current) ? nil : preferred
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
