import AdjointTensor

extension DerivativeRules {
    /// `custom.call`: the registered operator's own VJP and JVP, validated on every use.
    static func custom(_ op: OpCode) -> DerivativeRule {
        func registered(_ c: any DerivativeContext) throws -> CustomOperator {
            guard case let .custom(name) = c.attributes else { throw CustomOperatorError.unknown(name: "\(c.attributes)") }
            return try CustomOperators.lookup(name)
        }
        func inputs(_ c: any DerivativeContext) -> [Tensor] { (0..<c.inputCount).map { c.input($0) } }
        return .differentiable(saving: DerivativeRule.Saves(allInputs: true, output: true), vjp: { c in
            let op = try registered(c)
            guard let vjp = op.vjp else {
                throw AutodiffError.derivativeNotImplemented(op: .customCall, node: -1, reason: "custom operator '\(op.name)' was registered without a VJP")
            }
            let returned = try vjp(inputs(c), c.output, c.cotangent)
            guard returned.count == c.inputCount else { throw AutodiffError.customDerivative(name: op.name, detail: "the VJP returned \(returned.count) cotangents for \(c.inputCount) inputs") }
            // A derivative made on the CPU for a device operand goes to that operand's device.
            let grads = try returned.enumerated().map { i, g in
                try g?.resident(on: c.input(i).device, for: "the VJP of custom operator '\(op.name)'")
            }
            for (i, g) in grads.enumerated() {
                guard let g else { continue }
                let expected = c.inputTypes[i]
                guard g.shape == expected.shape, g.dtype == expected.dtype else {
                    throw AutodiffError.customDerivative(name: op.name, detail: "the cotangent of input \(i) is \(g.valueType), the input is \(expected)")
                }
            }
            return grads
        }, jvp: { c in
            let op = try registered(c)
            guard let jvp = op.jvp else {
                throw AutodiffError.derivativeNotImplemented(op: .customCall, node: -1, reason: "custom operator '\(op.name)' was registered without a JVP")
            }
            let tangent = try jvp(inputs(c), c.output, (0..<c.inputCount).map { c.tangent($0) })?
                .resident(on: c.output.device, for: "the JVP of custom operator '\(op.name)'")
            if let tangent, tangent.shape != c.outputType.shape || tangent.dtype != c.outputType.dtype {
                throw AutodiffError.customDerivative(name: op.name, detail: "the JVP returned \(tangent.valueType), the output is \(c.outputType)")
            }
            return tangent
        })
    }
}
