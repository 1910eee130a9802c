import AdjointTensor

/// A value made of tensors — a model's parameters, an optimizer's state, a tuple of inputs — that
/// can be differentiated as a whole. The gradient has the same type, holding one cotangent per
/// tensor.
///
/// Conform with the ``ParameterCollection()`` macro, which visits every stored `var` in declaration
/// order, named by the property (nested collections as `layer.weight`):
///
/// ```swift
/// @ParameterCollection
/// struct Dense {
///     var weight: Tensor, bias: Tensor
///     @ParameterIgnored var activation = "tanh"   // not a tensor: left out
/// }
/// ```
///
/// or by hand, visiting every stored tensor in a fixed order and naming each:
///
/// ```swift
/// struct Dense: ParameterCollection {
///     var weight: Tensor, bias: Tensor
///     mutating func visitTensors(_ visit: (String, inout Tensor) throws -> Void) rethrows {
///         try visit("weight", &weight)
///         try visit("bias", &bias)
///     }
/// }
/// ```
/// Nested collections forward with a prefix: `try layer.visitTensors { try visit("layer." + $0, &$1) }`.
public protocol ParameterCollection {
    /// Calls `visit` on every tensor, in a fixed order, with a stable dotted name.
    mutating func visitTensors(_ visit: (_ name: String, _ tensor: inout Tensor) throws -> Void) rethrows
}

/// Adds the ``ParameterCollection`` conformance to a struct: a `visitTensors` over every stored
/// `var`, in declaration order, each named by its property (`name.inner` for nested collections).
/// Every such property must itself be a ``ParameterCollection`` (a tensor, an array, dictionary or
/// optional of them, or another such struct); `let` properties and properties marked
/// ``ParameterIgnored()`` are not visited.
@attached(extension, conformances: ParameterCollection, names: named(visitTensors))
public macro ParameterCollection() = #externalMacro(module: "AdjointMacros", type: "ParameterCollectionMacro")

/// Marks a stored property that ``ParameterCollection()`` leaves out (a constant, a setting).
@attached(peer)
public macro ParameterIgnored() = #externalMacro(module: "AdjointMacros", type: "ParameterIgnoredMacro")

extension ParameterCollection {
    /// The tensors in visiting order.
    public var tensors: [Tensor] {
        var copy = self
        var out: [Tensor] = []
        copy.visitTensors { _, t in out.append(t) }
        return out
    }

    /// The tensors with their names, in visiting order.
    public var namedTensors: [(name: String, tensor: Tensor)] {
        var copy = self
        var out: [(String, Tensor)] = []
        copy.visitTensors { n, t in out.append((n, t)) }
        return out
    }

    /// A copy with each tensor replaced by `transform(tensor)`.
    public func mapTensors(_ transform: (Tensor) throws -> Tensor) rethrows -> Self {
        var copy = self
        try copy.visitTensors { _, t in t = try transform(t) }
        return copy
    }

    /// A copy holding `replacements` in visiting order (as many as ``tensors`` has).
    public func replacingTensors(with replacements: [Tensor]) -> Self {
        var copy = self
        var index = 0
        copy.visitTensors { _, t in
            precondition(index < replacements.count, "replacingTensors: \(replacements.count) tensors for more slots")
            t = replacements[index]
            index += 1
        }
        precondition(index == replacements.count, "replacingTensors: \(replacements.count) tensors for \(index) slots")
        return copy
    }
}

extension Tensor: ParameterCollection {
    public mutating func visitTensors(_ visit: (String, inout Tensor) throws -> Void) rethrows {
        try visit("", &self)
    }
}

extension Array: ParameterCollection where Element: ParameterCollection {
    public mutating func visitTensors(_ visit: (String, inout Tensor) throws -> Void) rethrows {
        for i in indices {
            try self[i].visitTensors { name, t in try visit(name.isEmpty ? "\(i)" : "\(i).\(name)", &t) }
        }
    }
}

extension Dictionary: ParameterCollection where Key == String, Value: ParameterCollection {
    /// Visits entries in sorted key order, so the order is stable.
    public mutating func visitTensors(_ visit: (String, inout Tensor) throws -> Void) rethrows {
        for key in keys.sorted() {
            try self[key]!.visitTensors { name, t in try visit(name.isEmpty ? key : "\(key).\(name)", &t) }
        }
    }
}

extension Optional: ParameterCollection where Wrapped: ParameterCollection {
    public mutating func visitTensors(_ visit: (String, inout Tensor) throws -> Void) rethrows {
        if self != nil { try self!.visitTensors(visit) }
    }
}
