import AdjointAutodiff
import AdjointTensor

/// Errors raised by optimizers, schedules and gradient utilities.
public enum TrainingError: Error, Equatable, CustomStringConvertible {
    /// An option is out of its domain (a negative learning rate, β outside [0, 1), …).
    case invalidOption(name: String, value: String, expected: String)
    /// A gradient does not have the parameters' structure: a tensor's name, shape or dtype differs.
    case gradientMismatch(parameter: String, detail: String)
    /// A gradient was read before anything was accumulated.
    case nothingAccumulated

    public var description: String {
        switch self {
        case let .invalidOption(name, value, expected):
            return "invalid \(name) \(value): expected \(expected)"
        case let .gradientMismatch(parameter, detail):
            return "the gradient does not match the parameters at '\(parameter)': \(detail)"
        case .nothingAccumulated:
            return "no gradient has been accumulated since the last zeroGrad(); call accumulate(_:weight:) first"
        }
    }
}
