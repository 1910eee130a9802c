extension Graph: CustomStringConvertible {
    /// The graph in Adjoint's text form, one equation a line:
    ///
    /// ```
    /// graph(%0: f64[3] arg, %1: f64[] capture) {
    ///   %2 = binary.mul(%0, %1) : f64[3]
    ///   %3 = reduction.sum(%2) {axes=[0], keepDims=false} : f64[]
    ///   return %3
    /// }
    /// ```
    public var description: String {
        var text = "graph("
        text += inputs.map { input in
            "\(input.id): \(input.type)" + (input.role == .capture ? " capture" : " arg")
        }.joined(separator: ", ")
        text += ") {\n"
        for node in nodes {
            text += "  " + node.description + "\n"
        }
        text += "  return " + outputs.map(\.description).joined(separator: ", ") + "\n}"
        return text
    }
}

extension Node: CustomStringConvertible {
    public var description: String {
        var line = outputs.map(\.description).joined(separator: ", ")
        line += " = " + op.rawValue + "(" + inputs.map(\.description).joined(separator: ", ") + ")"
        let attributeText = attributes.description
        if !attributeText.isEmpty { line += " " + attributeText }
        line += " : " + outputTypes.map(\.description).joined(separator: ", ")
        return line
    }
}
