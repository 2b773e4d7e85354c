import Models
import Tensors

/// `ocsvm`: a one-class SVM (RBF kernel, gamma = 1 / d on the unit-variance features, as
/// scikit-learn's "scale"; nu = 0.1) on the standardized pooled teacher features; score = minus
/// its decision value.
public struct OneClassSVMShift: ShiftDetector {
    /// The name.
    public static let name = "ocsvm"
    /// A few words.
    public static let summary = "one-class SVM on pooled features"
    /// Reads the pooled features only.
    public static let needsHead = false
    /// The share of training images allowed outside the boundary (an upper bound; libsvm's nu).
    public static let nu = 0.1

    /// The machine.
    public let machine: OneClassSVM

    /// Wraps a machine.
    public init(machine: OneClassSVM) { self.machine = machine }

    /// Solves the dual; returned through the bundle's float tensors, so it scores as a loaded one.
    public static func fit(_ data: ShiftFitData, generator: inout SeededGenerator) -> OneClassSVMShift? {
        guard
            let machine = OneClassSVM.fit(
                data.training, count: data.count, dimension: data.dimension, gamma: 1 / Double(data.dimension), nu: nu,
                tolerance: 1e-4)
        else { return nil }
        return try? load(OneClassSVMShift(machine: machine).tensors, dimension: data.dimension)
    }

    /// Reads `shift.ocsvm.{support,coefficients,parameters}`.
    public static func load(_ tensors: [String: Tensor], dimension d: Int) throws -> OneClassSVMShift {
        guard let s = tensors["shift.ocsvm.support"], let c = tensors["shift.ocsvm.coefficients"],
            let p = tensors["shift.ocsvm.parameters"], p.count == 2
        else { throw BundleError("shift.ocsvm tensors are missing") }
        guard
            let machine = OneClassSVM(
                dimension: d, gamma: Double(p.storage[0]), supportVectors: s.storage,
                coefficients: c.storage.map(Double.init), rho: Double(p.storage[1]))
        else { throw BundleError("shift.ocsvm tensors are malformed") }
        return OneClassSVMShift(machine: machine)
    }

    /// Support vectors, coefficients, and (gamma, rho).
    public var tensors: [String: Tensor] {
        let m = machine.coefficients.count
        return [
            "shift.ocsvm.support": Tensor(shape: [m, machine.dimension], storage: machine.supportVectors),
            "shift.ocsvm.coefficients": Tensor(shape: [m], storage: machine.coefficients.map(Float.init)),
            "shift.ocsvm.parameters": Tensor(shape: [2], storage: [Float(machine.gamma), Float(machine.rho)]),
        ]
    }

    /// Minus the decision value.
    public func score(_ input: ShiftInput) -> Float { Float(-machine.decision(input.pooled)) }
}
