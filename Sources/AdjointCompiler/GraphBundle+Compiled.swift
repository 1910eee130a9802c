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

    /// `compiled(order:native:)` with the outputs in bytes of their own (what `compile` runs: its
    /// results can then be written in place, see `ProgramPlanner.outputsApart`).
    func compiledWithOutputsApart(order: [Int], native: NativeCode) throws -> CompiledProgram {
        if checkedGraph != graph { try checkDeclaredTypes() }
        var planner = ProgramPlanner(graph: graph, captures: captures, order: order, boundaries: [])
        planner.outputsApart = true
        return try CompiledProgram(planning: planner, native: native)
    }
}
