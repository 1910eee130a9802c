import CBLAS

extension Kernels {
    /// Batched matrix product of the last two axes through OpenBLAS; batch axes broadcast.
    ///
    /// `a` is `[..., M, K]` (`[..., K, M]` with `transposeA`), `b` is `[..., K, N]`
    /// (`[..., N, K]` with `transposeB`); the result is `[..., M, N]`.
    static func matmul(_ attributes: Attributes, _ a: Tensor, _ b: Tensor) throws -> Tensor {
        guard case let .matmul(ta, tb) = attributes else { throw badAttributes(.matmul, attributes) }
        try requireFloat(a, op: .matmul, role: "left operand")
        try requireFloat(b, op: .matmul, role: "right operand")
        try requireSameDType(a, b, op: .matmul)
        let product = try MatmulPlan(a.shape, b.shape, ta: ta, tb: tb)
        let out = Tensor(uninitialized: product.shape, dtype: a.dtype)
        product.run(a.dtype, a.hostRawPointer, b.hostRawPointer, out.hostRawPointer)
        return out
    }

    /// A batched product's output shape and its GEMM jobs, from the operand shapes alone.
    package struct MatmulPlan {
        /// One row-major product of the plan: element offsets of its operands and result, and its rows.
        package typealias Job = (a: Int, b: Int, c: Int, m: Int)
        package let shape: [Int]
        /// The products, all `n` columns wide over `k`: one where a's batch folds into its rows.
        package let jobs: [Job]
        package let m: Int, n: Int, k: Int
        /// Whether a and b are read transposed.
        package let ta: Bool, tb: Bool

        package init(_ aShape: [Int], _ bShape: [Int], ta: Bool, tb: Bool) throws {
            let op = OpCode.matmul.rawValue
            guard aShape.count >= 2, bShape.count >= 2 else {
                throw TensorError.shapeMismatch(op: op, detail: "operands need rank ≥ 2, got \(shapeText(aShape)) and \(shapeText(bShape)); reshape vectors to [1,n] or [n,1]")
            }
            let (ar, ac) = (aShape[aShape.count - 2], aShape[aShape.count - 1])
            let (br, bc) = (bShape[bShape.count - 2], bShape[bShape.count - 1])
            let m = ta ? ac : ar, k = ta ? ar : ac
            let kb = tb ? bc : br, n = tb ? br : bc
            guard k == kb else {
                throw TensorError.shapeMismatch(op: op, detail: "inner dimensions differ: \(shapeText(aShape))\(ta ? "ᵀ" : "") × \(shapeText(bShape))\(tb ? "ᵀ" : "") (\(k) vs \(kb))")
            }
            let aBatch = Array(aShape.dropLast(2)), bBatch = Array(bShape.dropLast(2))
            let batch = try ShapeRules.broadcast(aBatch, bBatch, op: op)
            let count = batch.reduce(1, *)
            var jobs: [Job] = []
            if bBatch.reduce(1, *) == 1 && !ta && aBatch == batch {
                // Fold a's batch into M when b is a single matrix and a is not transposed.
                jobs.append((0, 0, 0, m * count))
            } else {
                let aStrides = ShapeRules.broadcastStrides(aBatch, to: batch)
                let bStrides = ShapeRules.broadcastStrides(bBatch, to: batch)
                var index = [Int](repeating: 0, count: batch.count)
                for i in 0..<count {
                    var oa = 0, ob = 0
                    for d in 0..<batch.count { oa += index[d] * aStrides[d]; ob += index[d] * bStrides[d] }
                    jobs.append((oa * ar * ac, ob * br * bc, i * m * n, m))
                    var d = batch.count - 1
                    while d >= 0 { index[d] += 1; if index[d] < batch[d] { break }; index[d] = 0; d -= 1 }
                }
            }
            (shape, self.jobs, self.m, self.n, self.k, self.ta, self.tb) = (batch + [m, n], jobs, m, n, k, ta, tb)
        }

        /// Writes the product of the operands at `a` and `b` to `c` (contiguous, `dtype` f32 or f64).
        package func run(_ dtype: DType, _ a: UnsafeMutableRawPointer, _ b: UnsafeMutableRawPointer, _ c: UnsafeMutableRawPointer) {
            let outputs = shape.reduce(1, *)
            if outputs == 0 { return }
            if k == 0 {
                c.initializeMemory(as: UInt8.self, repeating: 0, count: outputs * dtype.byteSize)
                return
            }
            gemmChunked(dtype, a, b, c, jobs: jobs, n: n, k: k, ta: ta, tb: tb)
        }
    }

    /// OpenBLAS runs single-threaded; Adjoint splits every GEMM into blocks of output rows or
    /// columns whose boundaries depend only on the problem's shape and runs the blocks on its own
    /// workers. Each output element is then computed by the same single-threaded call whatever the
    /// thread count — bitwise reproducible — where OpenBLAS's own threading may split the K loop
    /// differently per count. The split is along whichever of M and N duplicates less packing work
    /// (splitting M re-packs op(B) per block, splitting N re-packs op(A)).
    static func gemmChunked(_ dtype: DType, _ a: UnsafeMutableRawPointer, _ b: UnsafeMutableRawPointer, _ c: UnsafeMutableRawPointer,
                            jobs: [(a: Int, b: Int, c: Int, m: Int)], n: Int, k: Int, ta: Bool, tb: Bool) {
        _ = blasSingleThreaded
        let policy = ExecutionPolicy.current.determinism
        if jobs.count == 1, blockCount(m: jobs[0].m, n: n, k: k, policy: policy) == 1 {
            let job = jobs[0]   // one call: no block list
            gemm(dtype, a, job.a, b, job.b, c, job.c, m: job.m, n: n, k: k, ta: ta, tb: tb, lda: ta ? job.m : k, ldb: tb ? k : n, ldc: n)
            return
        }
        struct Block { var job: Int; var row: Int; var rows: Int; var column: Int; var columns: Int }
        var blocks: [Block] = []
        for (j, job) in jobs.enumerated() {
            let count = blockCount(m: job.m, n: n, k: k, policy: policy)
            let splitRows = job.m >= n
            let extent = splitRows ? job.m : n
            let size = (extent + count - 1) / count
            var start = 0
            while start < extent {
                let length = Swift.min(size, extent - start)
                blocks.append(splitRows ? Block(job: j, row: start, rows: length, column: 0, columns: n)
                                        : Block(job: j, row: 0, rows: job.m, column: start, columns: length))
                start += length
            }
        }
        Parallelism.forEachChunk(blocks.count) { index in
            let block = blocks[index], job = jobs[block.job]
            // Row r of op(A): with ta, A is [K, M] and row r starts at column r.
            let aOffset = job.a + (ta ? block.row : block.row * k)
            // Column j of op(B): with tb, B is [N, K] and column j starts at row j.
            let bOffset = job.b + (tb ? block.column * k : block.column)
            gemm(dtype, a, aOffset, b, bOffset, c, job.c + block.row * n + block.column,
                 m: block.rows, n: block.columns, k: k, ta: ta, tb: tb,
                 lda: ta ? job.m : k, ldb: tb ? k : n, ldc: n)
        }
    }

    /// Number of blocks. Under `.strict` a function of the shape only (never of the thread count);
    /// otherwise one block per worker thread for anything but small products.
    static func blockCount(m: Int, n: Int, k: Int, policy: DeterminismPolicy) -> Int {
        let work = m * n * k
        guard policy == .strict else {
            return work < 1 << 17 ? 1 : Swift.max(1, Swift.min(Parallelism.threadCount, Swift.max(m, n) / 32))
        }
        if work < 1 << 20 { return 1 }          // small: one call
        return Swift.min(4, Swift.max(m, n) / 64, Swift.max(1, work >> 22))
    }

    /// One GEMM in BLAS's column-major convention, as cuBLAS takes it (α 1, β 0): `c = op(a) · op(b)`,
    /// `m × n` over `k`. What the host emulation of a device runs for cuBLAS's calls.
    package static func gemmColumnMajor(float64: Bool, transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
                                        _ a: UnsafeRawPointer, lda: Int, _ b: UnsafeRawPointer, ldb: Int, _ c: UnsafeMutableRawPointer, ldc: Int) {
        _ = blasSingleThreaded
        let transA = transposeA ? CblasTrans : CblasNoTrans, transB = transposeB ? CblasTrans : CblasNoTrans
        if float64 {
            cblas_dgemm(CblasColMajor, transA, transB, Int32(m), Int32(n), Int32(k), 1, a.assumingMemoryBound(to: Double.self), Int32(lda),
                        b.assumingMemoryBound(to: Double.self), Int32(ldb), 0, c.assumingMemoryBound(to: Double.self), Int32(ldc))
        } else {
            cblas_sgemm(CblasColMajor, transA, transB, Int32(m), Int32(n), Int32(k), 1, a.assumingMemoryBound(to: Float.self), Int32(lda),
                        b.assumingMemoryBound(to: Float.self), Int32(ldb), 0, c.assumingMemoryBound(to: Float.self), Int32(ldc))
        }
    }

    static let blasSingleThreaded: Void = { openblas_set_num_threads(1) }()

    /// One row-major single-threaded GEMM: `c[cOff...] = op(a[aOff...]) · op(b[bOff...])`.
    static func gemm(_ dtype: DType, _ a: UnsafeMutableRawPointer, _ aOff: Int, _ b: UnsafeMutableRawPointer, _ bOff: Int,
                     _ c: UnsafeMutableRawPointer, _ cOff: Int, m: Int, n: Int, k: Int, ta: Bool, tb: Bool, lda: Int, ldb: Int, ldc: Int) {
        let transA = ta ? CblasTrans : CblasNoTrans, transB = tb ? CblasTrans : CblasNoTrans
        if dtype == .float64 {
            cblas_dgemm(CblasRowMajor, transA, transB, Int32(m), Int32(n), Int32(k), 1,
                        a.assumingMemoryBound(to: Double.self) + aOff, Int32(lda), b.assumingMemoryBound(to: Double.self) + bOff, Int32(ldb),
                        0, c.assumingMemoryBound(to: Double.self) + cOff, Int32(ldc))
        } else {
            cblas_sgemm(CblasRowMajor, transA, transB, Int32(m), Int32(n), Int32(k), 1,
                        a.assumingMemoryBound(to: Float.self) + aOff, Int32(lda), b.assumingMemoryBound(to: Float.self) + bOff, Int32(ldb),
                        0, c.assumingMemoryBound(to: Float.self) + cOff, Int32(ldc))
        }
    }
}
