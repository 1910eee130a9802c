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
        // Fused reductions sum as the strict policy does; under another, the program is interpreted.
        guard interpreter.exact, let native, !native.fusesReductions || interpreter.reducesStrictly else {
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
                let run = -2 - s
                runChunked(run, native, base, bound: bound)
                k = native.chunkedEnd[run]
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

    /// Each thread's block buffers for the fused reductions of chunked runs.
    static let blockBuffers = ThreadLocal { BlockBuffers() }

    /// Runs chunked run `run` natively on the frame at `base`: its chunks over the worker threads,
    /// then its fused reductions' partials combined into their results.
    func runChunked(_ run: Int, _ native: NativeSegments, _ base: UnsafeMutableRawPointer, bound: UnsafePointer<UnsafeMutableRawPointer?>? = nil) {
        // Chunk boundaries depend on the size only, and each element is computed the same way in
        // any chunk: the same bits with any number of threads.
        let function = native.chunked[run], n = native.chunkedElements[run]
        if native.chunkedReductions[run].isEmpty {
            let frame = FrameAddress(base, bound, nil)
            Parallelism.forEachRange(n, chunkSize: Parallelism.elementChunk) { r in
                function(frame.base, r.lowerBound, r.upperBound, frame.bound, nil, nil)
            }
            return
        }
        // Each chunk writes its own partial; they are combined when all are done. A chunk fills
        // its reductions' block buffers, the buffers of the thread it runs on.
        let blockBytes = native.chunkedReductions[run].count * NativeCodeGenerator.fusedBlockBytes
        withUnsafeTemporaryAllocation(byteCount: native.partialBytes[run], alignment: 8) { partials in
            let frame = FrameAddress(base, bound, partials.baseAddress)
            Parallelism.forEachRange(n, chunkSize: Parallelism.elementChunk) { r in
                function(frame.base, r.lowerBound, r.upperBound, frame.bound, frame.partials, Self.blockBuffers.value.bytes(blockBytes))
            }
            combine(native.chunkedReductions[run], partials: partials.baseAddress!, elements: n, into: base)
        }
    }

    /// Fused reductions' results from their partials (`elements` in the run: one partial per chunk).
    func combine(_ reductions: [FusedReduction], partials: UnsafeMutableRawPointer, elements n: Int, into base: UnsafeMutableRawPointer) {
        let chunks = (n + Parallelism.elementChunk - 1) / Parallelism.elementChunk
        for r in reductions {
            if r.float64 { Self.combine(r, partials + r.partials, chunks, into: base, Double.self) }
            else { Self.combine(r, partials + r.partials, chunks, into: base, Float.self) }
        }
    }

    /// A fused reduction's result from its `chunks` partials: ``Summation``'s strict tree, then
    /// the mean's division by the element count (as `Kernels.reduceTyped`).
    private static func combine<T: KernelFloat>(_ r: FusedReduction, _ partials: UnsafeMutableRawPointer, _ chunks: Int,
                                                into base: UnsafeMutableRawPointer, _: T.Type) {
        let p = partials.assumingMemoryBound(to: T.self)
        let sum = Summation.tree(p, chunks, +)
        (base + r.y).assumingMemoryBound(to: T.self).pointee = r.mean ? sum / T(r.extent) : sum
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
        let output = try runFallback(k, on: inputs)
        (base + f.output.offset).copyMemory(from: output.rawPointer, byteCount: f.output.type.byteCount)
    }

    /// Instruction `k`'s operator through the ordinary kernels on `inputs`, its operands.
    ///
    /// - Throws: the operator's errors; `TensorError.shapeMismatch` for a result of another type
    ///   than the program's (a custom operator's forward that changed).
    package func runFallback(_ k: Int, on inputs: [Tensor]) throws -> Tensor {
        let f = fallbacks[k]
        let output = try Kernels.execute(f.op, f.attributes, inputs)
        guard output.valueType == f.output.type else {
            throw TensorError.shapeMismatch(op: f.op.rawValue, detail: "the compiled program expects \(f.output.type), the operator returned \(output.valueType)")
        }
        return output
    }
}

/// A thread's block buffers for fused reductions (`NativeCodeGenerator.fusedBlockBytes` each):
/// grown to the most a run on the thread has asked for, freed when the thread ends.
final class BlockBuffers {
    private var buffer: UnsafeMutableRawPointer?
    private var capacity = 0

    /// At least `count` bytes, 64-byte aligned; their contents are the last run's.
    func bytes(_ count: Int) -> UnsafeMutableRawPointer {
        if count > capacity || buffer == nil {
            buffer?.deallocate()
            buffer = .allocate(byteCount: Swift.max(count, 1), alignment: 64)
            capacity = count
        }
        return buffer!
    }

    deinit { buffer?.deallocate() }
}

/// The frame's base address, handed to the threads of a chunked run: each writes only the
/// elements of its chunk (`NativeCodeGenerator.chunkedSegments(splits:)` checks that the run's
/// regions never overlap other than element for element).
private struct FrameAddress: @unchecked Sendable {
    let base: UnsafeMutableRawPointer
    let bound: UnsafePointer<UnsafeMutableRawPointer?>?
    /// The run's partials: each chunk writes only its own element of each reduction's.
    let partials: UnsafeMutableRawPointer?
    init(_ base: UnsafeMutableRawPointer, _ bound: UnsafePointer<UnsafeMutableRawPointer?>?, _ partials: UnsafeMutableRawPointer?) {
        (self.base, self.bound, self.partials) = (base, bound, partials)
    }
}
