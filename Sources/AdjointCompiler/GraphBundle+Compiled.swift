import AdjointAutodiff
import AdjointIR
import AdjointTensor

extension GraphBundle {
    /// The graph compiled to run in one preallocated frame (see ``CompiledProgram``): bitwise the
    /// outputs of `execute(_:)`, without a tensor per operation (with `native`, runs of its
    /// arithmetic as machine code).
    ///
    /// The compiler plans memory from the declared types, so a graph other than the one
    /// `decode(_:path:)` checked has its types checked first (`checkDeclaredTypes()`). Captured
    /// values on a device (a trace of device tensors captures them there) are copied to the CPU.
    public func compiled(order: [Int]? = nil, boundary: Int? = nil, native: NativeCode = .off) throws -> CompiledProgram {
        let bundle = try capturesOnHost()
        if bundle.checkedGraph != bundle.graph { try bundle.checkDeclaredTypes() }
        return try CompiledProgram(bundle.graph, captures: bundle.captures, order: order, boundary: boundary, native: native)
    }

    /// `compiled(order:native:)` with the outputs in bytes of their own (what `compile` runs: its
    /// results can then be written in place, see `ProgramPlanner.outputsApart`).
    func compiledWithOutputsApart(order: [Int], native: NativeCode) throws -> CompiledProgram {
        let bundle = try capturesOnHost()
        if bundle.checkedGraph != bundle.graph { try bundle.checkDeclaredTypes() }
        var planner = ProgramPlanner(graph: bundle.graph, captures: bundle.captures, order: order, boundaries: [])
        planner.outputsApart = true
        return try CompiledProgram(planning: planner, native: native)
    }

    /// This bundle with its captured values copied to the CPU (itself where all are there).
    private func capturesOnHost() throws -> GraphBundle {
        guard captures.values.contains(where: { $0.device != .cpu }) else { return self }
        var bundle = self
        bundle.captures = try captures.mapValues { try $0.to(.cpu) }
        return bundle
    }
}
