import AdjointTensor
import AdjointIR

extension CompiledProgram {
    /// Runs `range` of the instructions on the frame at `base`.
    ///
    /// `bound`: pointers in place of the regions in `NativeSegments.bound` (only where every
    /// chunked run of the program runs natively: see ``callAsFunction(_:)``).
    func execute(_ range: Range<Int>, _ base: UnsafeMutableRawPointer, bound: UnsafePointer<UnsafeMutableRawPointer?>? = nil) throws {
        guard !range.isEmpty else { return }
        let interpreter = FrameInterpreter(instructions: instructions, tables: tables, products: products, hasReductions: hasReductions)
        guard interpreter.exact, let native else {
            try interpreter.run(range, base) { try runFallback($0, base) }
            return
        }
        // Runs compiled to machine code, where a whole run is asked for.
        let (start, end, functions) = (native.start, native.end, native.functions)
        var k = range.lowerBound
        while k < range.upperBound {
            let s = Int(start[k])
            if s >= 0, end[s] <= range.upperBound {
                functions[s](base)
                k = end[s]
            } else if s <= -2, native.chunkedReach[-2 - s] <= range.upperBound {
                // Chunk boundaries depend on the size only, and each element is computed the same
                // way in any chunk: the same bits with any number of threads.
                let function = native.chunked[-2 - s]
                let frame = FrameAddress(base, bound)
                Parallelism.forEachRange(native.chunkedElements[-2 - s], chunkSize: Parallelism.elementChunk) { r in
                    function(frame.base, r.lowerBound, r.upperBound, frame.bound)
                }
                k = native.chunkedEnd[-2 - s]
            } else if let bound, let places = native.boundMatmuls[k] {
                // A matmul reading or writing a bound region: its operands where they are bound.
                func address(_ place: (offset: Int, slot: Int, delta: Int)) -> UnsafeMutableRawPointer {
                    place.slot >= 0 ? (bound[place.slot].map { $0 + place.delta } ?? base + place.offset) : base + place.offset
                }
                let i = instructions[k]
                products[i.product].run(i.float64 ? .float64 : .float32, address(places.a), address(places.b), address(places.y))
                k += 1
            } else {
                if !interpreter.interpret(k, base) { try runFallback(k, base) }
                k += 1
            }
        }
    }

    /// Runs instruction `k` through the ordinary kernel on temporary tensors.
    private func runFallback(_ k: Int, _ base: UnsafeMutableRawPointer) throws {
        let f = fallbacks[k]
        let inputs = f.inputs.map { operand -> Tensor in
            let t = Tensor(uninitialized: operand.type.shape, dtype: operand.type.dtype)
            if operand.table >= 0 {
                // A folded gather: its elements through its table (only f64/f32 gathers fold).
                let size = operand.type.dtype.byteSize
                for k in 0..<operand.type.elementCount {
                    let source = operand.entry(k, in: tables)
                    if source >= 0 { (t.rawPointer + k * size).copyMemory(from: base + source * size, byteCount: size) }
                    else { (t.rawPointer + k * size).initializeMemory(as: UInt8.self, repeating: 0, count: size) }
                }
            } else {
                t.rawPointer.copyMemory(from: base + operand.offset, byteCount: operand.type.byteCount)
            }
            return t
        }
        let output = try Kernels.execute(f.op, f.attributes, inputs)
        guard output.valueType == f.output.type else {
            throw TensorError.shapeMismatch(op: f.op.rawValue, detail: "the compiled program expects \(f.output.type), the operator returned \(output.valueType)")
        }
        (base + f.output.offset).copyMemory(from: output.rawPointer, byteCount: f.output.type.byteCount)
    }
}

/// The frame's base address, handed to the threads of a chunked run: each writes only the
/// elements of its chunk (`NativeCodeGenerator.chunkedSegments(splits:)` checks that the run's
/// regions never overlap other than element for element).
private struct FrameAddress: @unchecked Sendable {
    let base: UnsafeMutableRawPointer
    let bound: UnsafePointer<UnsafeMutableRawPointer?>?
    init(_ base: UnsafeMutableRawPointer, _ bound: UnsafePointer<UnsafeMutableRawPointer?>?) { (self.base, self.bound) = (base, bound) }
}
