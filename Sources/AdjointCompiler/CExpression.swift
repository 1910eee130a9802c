import AdjointTensor

/// A C expression of a `double` or `float`: the native code generator prints a ``Pointwise``
/// formula by evaluating it over these. A value the formula names (``named()``) becomes a variable
/// of the branch being printed, and a branch with variables is a GNU statement expression, so each
/// branch computes only what it uses, as the kernel's `if` does.
struct CExpression: ElementValue {
    typealias Failure = Never
    typealias Condition = CExpression

    /// The variables of the branches being printed, innermost last.
    final class Scope {
        let float64: Bool
        /// CUDA C++ (NVRTC) rather than C: a branch with variables is a lambda called in place
        /// (NVRTC has no statement expressions), and square roots are `sqrt`/`sqrtf` (IEEE on
        /// the device, as the C builtins on the CPU).
        let cuda: Bool
        private var branches: [[String]] = [[]]
        private var count = 0

        init(float64: Bool, cuda: Bool = false) { (self.float64, self.cuda) = (float64, cuda) }

        var type: String { float64 ? "double" : "float" }

        /// Declares a variable holding `value` in the innermost branch and names it.
        func declare(_ value: String) -> String {
            count += 1
            branches[branches.count - 1].append("\(type) v\(count) = \(value);")
            return "v\(count)"
        }

        /// `value` printed as a branch of its own: with the variables `body` declared, if any.
        func branch(_ body: () -> CExpression) -> String {
            branches.append([])
            let value = body()
            let declarations = branches.removeLast()
            if declarations.isEmpty { return value.text }
            return cuda ? "([&]() -> \(type) { \(declarations.joined(separator: " ")) return \(value.text); })()"
                        : "({ \(declarations.joined(separator: " ")) \(value.text); })"
        }

        /// A function body returning `value`, after the variables declared outside any branch.
        func body(returning value: CExpression) -> String {
            (branches[0] + ["return \(value.text);"]).joined(separator: " ")
        }
    }

    let text: String
    let scope: Scope

    init(_ text: String, _ scope: Scope) { (self.text, self.scope) = (text, scope) }

    /// An argument for finding out whether a formula exists for an operator.
    static var probe: CExpression { CExpression("x", Scope(float64: true)) }

    private func with(_ text: String) -> CExpression { CExpression(text, scope) }
    private func call(_ double: String, _ float: String, _ arguments: CExpression...) -> CExpression {
        with("\(scope.float64 ? double : float)(\(arguments.map(\.text).joined(separator: ", ")))")
    }
    private static func infix(_ a: CExpression, _ op: String, _ b: CExpression) -> CExpression { a.with("(\(a.text) \(op) \(b.text))") }

    static func + (a: Self, b: Self) -> Self { infix(a, "+", b) }
    static func - (a: Self, b: Self) -> Self { infix(a, "-", b) }
    static func * (a: Self, b: Self) -> Self { infix(a, "*", b) }
    static func / (a: Self, b: Self) -> Self { infix(a, "/", b) }
    static prefix func - (x: Self) -> Self { x.with("(-\(x.text))") }

    /// The constant as a C literal of the element type (`0.5`, `0.5f`; exact for a value the
    /// element type holds).
    func constant(_ value: Double) -> Self {
        let literal = scope.float64 ? "\(value)" : "\(Float(value))f"
        return with(value < 0 ? "(\(literal))" : literal)
    }

    func exp() -> Self { call("exp", "expf", self) }
    func expm1() -> Self { call("expm1", "expm1f", self) }
    func log() -> Self { call("log", "logf", self) }
    func log1p() -> Self { call("log1p", "log1pf", self) }
    func sqrt() -> Self { squareRoot() }
    func sin() -> Self { call("sin", "sinf", self) }
    func cos() -> Self { call("cos", "cosf", self) }
    /// libm's `tanh` in double; in float, ``Pointwise/float32Tanh(_:)`` (printed once, in double,
    /// as `adjoint_float32_tanh` by the native code's helpers) — as the kernels compute it.
    func tanh() -> Self { scope.float64 ? call("tanh", "tanh", self) : with("((float)adjoint_float32_tanh((double)\(text)))") }
    func abs() -> Self { call("fabs", "fabsf", self) }
    func signum() -> Self { Pointwise.sign(self) }
    func sigmoid() -> Self { Pointwise.sigmoid(self) }
    func pow(_ exponent: Self) -> Self { power(exponent) }
    func squareRoot() -> Self { scope.cuda ? call("sqrt", "sqrtf", self) : call("__builtin_sqrt", "__builtin_sqrtf", self) }
    func power(_ exponent: Self) -> Self { call("pow", "powf", self, exponent) }

    func greater(_ other: Self) -> Self { Self.infix(self, ">", other) }
    func less(_ other: Self) -> Self { Self.infix(self, "<", other) }
    func equal(_ other: Self) -> Self { Self.infix(self, "==", other) }
    func greaterOrEqual(_ other: Self) -> Self { Self.infix(self, ">=", other) }
    func lessOrEqual(_ other: Self) -> Self { Self.infix(self, "<=", other) }
    func isNotANumber() -> Self { Self.infix(self, "!=", self) }
    static func or(_ a: Self, _ b: Self) -> Self { infix(a, "||", b) }
    static func indicator(_ condition: Self, like: Self) -> Self {
        condition.with("(\(condition.text) ? \(like.constant(1).text) : \(like.constant(0).text))")
    }
    static func select(_ condition: Self, _ a: Self, else b: Self) -> Self { condition.with("(\(condition.text) ? \(a.text) : \(b.text))") }
    static func choose(_ condition: Self, _ a: () -> Self, else b: () -> Self) -> Self {
        let scope = condition.scope
        return condition.with("(\(condition.text) ? \(scope.branch(a)) : \(scope.branch(b)))")
    }
    func named() -> Self { with(scope.declare(text)) }
}
