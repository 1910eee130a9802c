/// The single entry point of every tensor operation.
///
/// Validates the inputs and attributes (throwing ``TensorError`` naming the operator), runs the
/// CPU kernel — or, where an operand lives on a device, the device's (`DeviceBackend`) — and
/// passes the call through the active interpreter levels of the current thread.
///
/// - Returns: The operator's outputs (one for every operator today).
public func dispatch(_ op: OpCode, _ attributes: Attributes = .none, _ inputs: [Tensor]) throws -> [Tensor] {
    [try dispatch1(op, attributes, inputs)]
}

/// ``dispatch(_:_:_:)`` for single-output operators (all of them today): the hot path.
package func dispatch1(_ op: OpCode, _ attributes: Attributes = .none, _ inputs: [Tensor]) throws -> Tensor {
    if let arity = op.arity, arity != inputs.count {
        throw TensorError.invalidArgument(op: op.rawValue, detail: "takes \(arity) inputs, got \(inputs.count)")
    }
    let stack = InterpreterStack.current
    if !stack.wrapsKernels {
        guard stack.isActive else { return try Kernels.execute(op, attributes, inputs) }
        var call = OpCall(op: op, attributes: attributes, inputs: inputs, output: try Kernels.execute(op, attributes, inputs))
        try stack.observe(&call)
        return call.output
    }
    return try dispatchObserved(op, attributes, inputs, stack)
}

/// ``dispatch1(_:_:_:)`` for an elementwise operator of one operand (`OpFamily.unary`).
///
/// Where no resource limit or timer is active on the thread and arithmetic is plain (no float64
/// debugging, no mixed-precision storage), the kernel runs on the operand directly and the visible
/// interpreter levels, if any, see the call through
/// ``InterpreterLevel/processElementwise(_:_:output:)`` with the operand in place: no input list
/// and no ``OpCall`` are built, which for small tensors is a third of the cost. Otherwise it is
/// exactly ``dispatch1(_:_:_:)``.
package func dispatchUnary(_ op: OpCode, _ x: Tensor) throws -> Tensor {
    precondition(op.family == .unary, "dispatchUnary called with \(op.rawValue)")
    let stack = InterpreterStack.current
    guard kernelMayRunDirectly(stack), !x.storage.isOnDevice else { return try dispatch1(op, .none, [x]) }
    var output = try Kernels.unary(op, x)
    guard stack.isActive else { return output }
    try withBorrowedOperand(x) { try stack.observeElementwise(op, $0, output: &output) }
    return consume output
}

/// ``dispatch1(_:_:_:)`` for an elementwise operator of two broadcast operands (add, sub, mul,
/// div, pow, maximum, minimum), with the direct path of ``dispatchUnary(_:_:)``.
package func dispatchBinary(_ op: OpCode, _ a: Tensor, _ b: Tensor) throws -> Tensor {
    precondition(op.family == .binary && op != .multiplyAdd, "dispatchBinary called with \(op.rawValue)")
    let stack = InterpreterStack.current
    guard kernelMayRunDirectly(stack), !a.storage.isOnDevice, !b.storage.isOnDevice else { return try dispatch1(op, .none, [a, b]) }
    var output = try Kernels.binary(op, a, b)
    guard stack.isActive else { return output }
    try withBorrowedOperands(a, b) { try stack.observeElementwise(op, $0, output: &output) }
    return consume output
}

/// Runs `body` with pointers to the operands themselves, valid for the call: levels read them in
/// place (copying a field out retains as usual), so nothing is copied, retained or released.
@inline(__always)
private func withBorrowedOperands(_ a: borrowing Tensor, _ b: borrowing Tensor,
                                  _ body: (ElementwiseOperands) throws -> Void) rethrows {
    try withUnsafePointer(to: a) { a in
        try withUnsafePointer(to: b) { b in try body(ElementwiseOperands(a, b)) }
    }
}

/// ``withBorrowedOperands(_:_:_:)`` for one operand.
@inline(__always)
private func withBorrowedOperand(_ x: borrowing Tensor, _ body: (ElementwiseOperands) throws -> Void) rethrows {
    try withUnsafePointer(to: x) { try body(ElementwiseOperands($0)) }
}

/// The operands of an elementwise call, read in place: one or two pointers to tensors the caller
/// holds for the duration of the call (``InterpreterLevel/processElementwise(_:_:output:)``), or
/// the elements of an input list.
package struct ElementwiseOperands {
    private let first: UnsafePointer<Tensor>
    /// The second operand; `first + 1` for a list.
    private let second: UnsafePointer<Tensor>?
    /// 1 or 2 (up to the list's length for a list).
    package let count: Int

    init(_ only: UnsafePointer<Tensor>) { (first, second, count) = (only, nil, 1) }
    init(_ a: UnsafePointer<Tensor>, _ b: UnsafePointer<Tensor>) { (first, second, count) = (a, b, 2) }

    /// The elements of `list`, which must stay alive and unchanged while the value is used.
    package init(list: UnsafeBufferPointer<Tensor>) {
        precondition(!list.isEmpty, "an operand list is not empty")
        first = list.baseAddress!
        second = list.count > 1 ? list.baseAddress! + 1 : nil
        count = list.count
    }

    package var indices: Range<Int> { 0..<count }

    /// The `i`-th operand, in place (read its fields through `pointee`; loading the whole value
    /// copies it).
    @inline(__always)
    package subscript(i: Int) -> UnsafePointer<Tensor> {
        precondition(i >= 0 && i < count, "operand \(i) of \(count)")
        return i == 0 ? first : i == 1 ? second! : first + i
    }
}

/// Whether the kernel may run on the operands directly: no resource limit or timer on the
/// thread (they wrap the kernel) and plain arithmetic (float64 debugging and mixed-precision
/// storage round through ``Kernels/execute(_:_:_:)``). Interpreter levels may be active.
private func kernelMayRunDirectly(_ stack: InterpreterStack) -> Bool {
    !stack.wrapsKernels && NumericSettings.arithmeticIsPlain
}

/// The slow path: timing and resource limits around the kernel.
func dispatchObserved(_ op: OpCode, _ attributes: Attributes, _ inputs: [Tensor], _ stack: InterpreterStack) throws -> Tensor {
    let started = stack.timer?.begin(op)
    let output = try Kernels.execute(op, attributes, inputs)
    if let started { stack.timer?.end(op, started: started, inputs: inputs, output: output) }
    try stack.limits?.check(op, output: output)
    guard stack.isActive else { return output }
    var call = OpCall(op: op, attributes: attributes, inputs: inputs, output: output)
    try stack.observe(&call)
    return call.output
}

/// Receives the timing of every operator dispatched on a thread (the profiler implements it).
package protocol OperatorTimer: AnyObject {
    /// Called before the kernel runs; returns a start token (e.g. a timestamp).
    func begin(_ op: OpCode) -> UInt64
    /// Called after the kernel ran.
    func end(_ op: OpCode, started: UInt64, inputs: [Tensor], output: Tensor)
}

/// The entry point of in-place operators: writes into `target` (copying first if anything else
/// refers to its storage) and passes the call to the interpreter levels as a functional update of
/// `target`.
package func dispatchInPlace(_ op: OpCode, _ attributes: Attributes, target: inout Tensor, operands: [Tensor]) throws {
    precondition(op.isInPlace, "dispatchInPlace called with \(op.rawValue)")
    try Kernels.validateInPlace(op, attributes, target: target, operands: operands)
    let stack = InterpreterStack.current
    // Under recording, the levels need the value before the write: holding it makes the write
    // below go to a copy.
    var before: Tensor?
    if stack.isActive, !target.traceTags.isEmpty || operands.contains(where: { !$0.traceTags.isEmpty }) {
        before = target
    }
    if let backend = Tensor.deviceBackend([target] + operands) {
        // A device storage is never written in place: the target takes the new value's storage.
        let value = try backend.execute(op, attributes, [target.untracked] + operands)
        target.replaceStorage(with: value)
    } else {
        target.makeUnique()
        try Kernels.executeInPlace(op, attributes, target: target, operands: operands)
    }
    guard let before else { return }
    var call = OpCall(op: op, attributes: attributes, inputs: [before] + operands, output: target.untracked)
    try stack.observe(&call)
    target.traceTags = call.output.traceTags
}
