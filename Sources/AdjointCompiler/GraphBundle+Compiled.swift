import AdjointAutodiff
import AdjointIR

extension GraphBundle {
    /// The graph compiled to run in one preallocated frame (see ``CompiledProgram``): bitwise the
    /// outputs of `execute(_:)`, without a tensor per operation (with `native`, runs of its
    /// arithmetic as machine code).
    ///
    /// The compiler plans memory from the declared types, so a graph other than the one
    /// `decode(_:path:)` checked has its types checked first (`checkDeclaredTypes()`).
    public func compiled(order: [Int]? = nil, boundary: Int? = nil, native: NativeCode = .off) throws -> CompiledProgram {
        if checkedGraph != graph { try checkDeclaredTypes() }
        return try CompiledProgram(graph, captures: captures, order: order, boundary: boundary, native: native)
    }
}
