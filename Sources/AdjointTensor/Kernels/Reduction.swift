import Synchronization
import RealModule

/// Accurate, deterministic summation.
///
/// A contiguous run is summed pairwise (error O(log n · ε) instead of O(n · ε)). Under
/// ``DeterminismPolicy/strict`` runs longer than ``blockSize`` are cut into fixed blocks whose
/// partial sums are combined in a fixed binary tree, so the result is the same whether the blocks
/// run on one thread or many; the other policies cut one part per worker (see ``sum(_:_:policy:)``).
package enum Summation {
    package static let blockSize = 1 << 15
    /// The rows a reduction along a strided axis accumulates one after another before its blocks
    /// are combined in the fixed tree (``Kernels/reduceStrided(_:_:_:_:_:_:)``; the GPU's
    /// reduction kernels take the same blocks).
    package static let rowBlock = 64

    static func pairwise<T: KernelFloat>(_ p: UnsafePointer<T>, _ n: Int) -> T {
        if n <= 64 {
            var s0: T = 0, s1: T = 0, s2: T = 0, s3: T = 0
            var i = 0
            while i + 4 <= n {
                s0 += p[i]; s1 += p[i + 1]; s2 += p[i + 2]; s3 += p[i + 3]
                i += 4
            }
            while i < n { s0 += p[i]; i += 1 }
            return (s0 + s1) + (s2 + s3)
        }
        let half = (n / 2) & ~3
        return pairwise(p, half) + pairwise(p + half, n - half)
    }

    /// Combines `values` in a fixed binary tree (in place).
    package static func tree<T>(_ values: UnsafeMutablePointer<T>, _ count: Int, _ combine: (T, T) -> T) -> T {
        var step = 1
        while step < count {
            var i = 0
            while i + step < count {
                values[i] = combine(values[i], values[i + step])
                i += 2 * step
            }
            step *= 2
        }
        return values[0]
    }

    /// Sum of a contiguous run, parallel when it is long.
    ///
    /// `.strict`: fixed blocks, fixed tree. `.bestEffort`: one part per worker thread, partials
    /// added left to right (reproducible at one thread count). `.fast`: one part per worker, each
    /// partial added to the total when its worker finishes (no reproducibility promise).
    ///
    /// `threads` is the dispatching thread's ``Parallelism/threadCount`` (this may run on a worker).
    static func sum<T: KernelFloat>(_ p: UnsafePointer<T>, _ n: Int, policy: DeterminismPolicy, threads: Int) -> T {
        if n <= blockSize { return pairwise(p, n) }
        if policy != .strict { return sumPerWorker(p, n, parts: threads, inCompletionOrder: policy == .fast) }
        let blocks = (n + blockSize - 1) / blockSize
        let partials = UnsafeMutablePointer<T>.allocate(capacity: blocks)
        defer { partials.deallocate() }
        Parallelism.forEachChunk(blocks) { b in
            let lo = b * blockSize
            partials[b] = pairwise(p + lo, Swift.min(blockSize, n - lo))
        }
        return tree(partials, blocks, +)
    }

    /// One part per worker thread (the cut moves with the thread count).
    static func sumPerWorker<T: KernelFloat>(_ p: UnsafePointer<T>, _ n: Int, parts threads: Int, inCompletionOrder: Bool) -> T {
        let parts = Swift.min(threads, (n + blockSize - 1) / blockSize)
        if parts <= 1 { return pairwise(p, n) }
        let size = (n + parts - 1) / parts
        if inCompletionOrder {
            let total = Lock<T>(0)
            Parallelism.forEachChunk(parts) { c in
                let lo = c * size
                let partial = pairwise(p + lo, Swift.min(size, n - lo))
                total.withLock { $0 += partial }
            }
            return total.withLock { $0 }
        }
        let partials = UnsafeMutablePointer<T>.allocate(capacity: parts)
        defer { partials.deallocate() }
        Parallelism.forEachChunk(parts) { c in
            let lo = c * size
            partials[c] = pairwise(p + lo, Swift.min(size, n - lo))
        }
        var total: T = 0
        for c in 0..<parts { total += partials[c] }
        return total
    }
}

/// How a reduction combines elements.
enum ReduceKind { case sum, max, min }

extension Kernels {
    static func reduction(_ op: OpCode, _ attributes: Attributes, _ x: Tensor) throws -> Tensor {
        try requireFloat(x, op: op)
        if op == .argmax {
            guard case let .axisKeepDims(axis, keepDims) = attributes else { throw badAttributes(op, attributes) }
            return try argmax(x, axis: axis, keepDims: keepDims)
        }
        guard case let .reduction(rawAxes, keepDims) = attributes else { throw badAttributes(op, attributes) }
        let axes = try ShapeRules.axes(rawAxes, rank: x.rank, op: op.rawValue)
        if (op == .max || op == .min), axes.contains(where: { x.shape[$0] == 0 }) {
            throw TensorError.invalidArgument(op: op.rawValue, detail: "cannot reduce an empty axis of \(shapeText(x.shape)) (no identity)")
        }
        let outShape = reducedShape(x.shape, axes: axes, keepDims: keepDims)
        let (grouped, outer, extent, inner) = try groupReducedAxes(x, axes: axes)
        let y = Tensor(uninitialized: outShape, dtype: x.dtype)
        let policy = KernelPolicy.current
        if x.dtype == .float64 {
            reduceTyped(op, grouped.elements(Double.self), outer, extent, inner, y.elements(Double.self), policy)
        } else {
            reduceTyped(op, grouped.elements(Float.self), outer, extent, inner, y.elements(Float.self), policy)
        }
        return y
    }

    static func reducedShape(_ shape: [Int], axes: [Int], keepDims: Bool) -> [Int] {
        var out: [Int] = []
        for (i, d) in shape.enumerated() {
            if axes.contains(i) { if keepDims { out.append(1) } } else { out.append(d) }
        }
        return out
    }

    /// Brings the reduced axes together: returns a tensor viewed as (outer, extent, inner).
    static func groupReducedAxes(_ x: Tensor, axes: [Int]) throws -> (Tensor, Int, Int, Int) {
        if axes.isEmpty { return (x, x.elementCount, 1, 1) }
        let isRun = axes.last! - axes.first! + 1 == axes.count
        if isRun {
            let outer = x.shape[..<axes.first!].reduce(1, *)
            let extent = axes.reduce(1) { $0 * x.shape[$1] }
            let inner = x.shape[(axes.last! + 1)...].reduce(1, *)
            return (x, outer, extent, inner)
        }
        let kept = (0..<x.rank).filter { !axes.contains($0) }
        let permuted = try permute(x, kept + axes)
        let extent = axes.reduce(1) { $0 * x.shape[$1] }
        return (permuted, x.elementCount / Swift.max(extent, 1), extent, 1)
    }

    static func reduceTyped<T: KernelFloat>(_ op: OpCode, _ x: UnsafeMutablePointer<T>, _ outer: Int, _ extent: Int, _ inner: Int,
                                            _ y: UnsafeMutablePointer<T>, _ policy: KernelPolicy) {
        switch op {
        case .sum: reduceLayout(x, outer, extent, inner, y, .sum, policy)
        case .mean:
            reduceLayout(x, outer, extent, inner, y, .sum, policy)
            let n = T(extent)
            for i in 0..<(outer * inner) { y[i] = y[i] / n }
        case .max: reduceLayout(x, outer, extent, inner, y, .max, policy)
        case .min: reduceLayout(x, outer, extent, inner, y, .min, policy)
        case .logsumexp: logsumexp(x, outer, extent, inner, y, policy)
        default: break
        }
    }

    @inline(__always)
    static func combine<T: KernelFloat>(_ kind: ReduceKind, _ a: T, _ b: T) -> T {
        switch kind {
        case .sum: return a + b
        case .max: return MaxFn.apply(a, b)
        case .min: return MinFn.apply(a, b)
        }
    }

    /// Reduces the middle axis of an (outer, extent, inner) layout into `y` (outer × inner).
    static func reduceLayout<T: KernelFloat>(_ x: UnsafeMutablePointer<T>, _ outer: Int, _ extent: Int, _ inner: Int,
                                             _ y: UnsafeMutablePointer<T>, _ kind: ReduceKind, _ policy: KernelPolicy) {
        if extent == 0 {
            for i in 0..<(outer * inner) { y[i] = 0 }
            return
        }
        if inner == 1 {
            // A local function, not a closure value: calling it allocates no context.
            func body(_ o: Int) {
                let p = UnsafePointer(x + o * extent)
                switch kind {
                case .sum: y[o] = Summation.sum(p, extent, policy: policy.determinism, threads: policy.threads)
                case .max, .min:
                    var acc = p[0]
                    for i in 1..<extent { acc = combine(kind, acc, p[i]) }
                    y[o] = acc
                }
            }
            if outer == 1 { body(0) } else {
                let perChunk = Swift.max(1, Parallelism.elementChunk / extent)
                Parallelism.forEachRange(outer, chunkSize: perChunk) { r in for o in r { body(o) } }
            }
            return
        }
        // Strided: the combining function as a type, so the loops over `inner` vectorize.
        switch kind {
        case .sum: reduceStrided(x, outer, extent, inner, y, AddFn.self)
        case .max: reduceStrided(x, outer, extent, inner, y, MaxFn.self)
        case .min: reduceStrided(x, outer, extent, inner, y, MinFn.self)
        }
    }

    /// ``reduceLayout(_:_:_:_:_:_:_:)`` for `inner > 1`: accumulates fixed blocks of rows
    /// vectorized over `inner`, then combines the blocks in a fixed tree. Work is split over
    /// (outer, inner-chunk) pairs.
    static func reduceStrided<T: KernelFloat, F: BinaryFunction>(_ x: UnsafeMutablePointer<T>, _ outer: Int, _ extent: Int, _ inner: Int,
                                                                  _ y: UnsafeMutablePointer<T>, _: F.Type) {
        let rowBlock = Summation.rowBlock
        if extent <= rowBlock && outer * inner < Parallelism.elementChunk {
            // One block and little work: the same row-by-row accumulation, without scratch memory.
            for o in 0..<outer {
                let base = x + o * extent * inner, dst = y + o * inner
                for i in 0..<inner { dst[i] = base[i] }
                for r in 1..<extent {
                    let src = base + r * inner
                    for i in 0..<inner { dst[i] = F.apply(dst[i], src[i]) }
                }
            }
            return
        }
        let blocks = (extent + rowBlock - 1) / rowBlock
        let width = 1024
        let innerChunks = (inner + width - 1) / width
        Parallelism.forEachChunk(outer * innerChunks) { task in
            let o = task / innerChunks, i0 = (task % innerChunks) * width
            let w = Swift.min(width, inner - i0)
            let scratch = UnsafeMutablePointer<T>.allocate(capacity: blocks * w)
            defer { scratch.deallocate() }
            let base = x + o * extent * inner + i0
            for b in 0..<blocks {
                let acc = scratch + b * w
                let r0 = b * rowBlock
                let src0 = base + r0 * inner
                for i in 0..<w { acc[i] = src0[i] }
                for r in (r0 + 1)..<Swift.min(extent, r0 + rowBlock) {
                    let src = base + r * inner
                    for i in 0..<w { acc[i] = F.apply(acc[i], src[i]) }
                }
            }
            var step = 1
            while step < blocks {
                var b = 0
                while b + step < blocks {
                    let a = scratch + b * w, c = scratch + (b + step) * w
                    for i in 0..<w { a[i] = F.apply(a[i], c[i]) }
                    b += 2 * step
                }
                step *= 2
            }
            let dst = y + o * inner + i0
            for i in 0..<w { dst[i] = scratch[i] }
        }
    }

    /// log Σ exp over the middle axis, shifted by the maximum so nothing overflows.
    static func logsumexp<T: KernelFloat>(_ x: UnsafeMutablePointer<T>, _ outer: Int, _ extent: Int, _ inner: Int,
                                          _ y: UnsafeMutablePointer<T>, _ policy: KernelPolicy) {
        let m = UnsafeMutablePointer<T>.allocate(capacity: Swift.max(1, outer * inner))
        defer { m.deallocate() }
        if extent == 0 {
            for i in 0..<(outer * inner) { y[i] = -T.infinity }
            return
        }
        reduceLayout(x, outer, extent, inner, m, .max, policy)
        let n = outer * extent * inner
        let shifted = UnsafeMutablePointer<T>.allocate(capacity: n)
        defer { shifted.deallocate() }
        Parallelism.forEachRange(n) { r in
            for k in r {
                let o = k / (extent * inner), i = k % inner
                let mk = m[o * inner + i]
                shifted[k] = mk.isFinite ? T.exp(x[k] - mk) : (x[k] == mk ? 1 : 0)
            }
        }
        reduceLayout(shifted, outer, extent, inner, y, .sum, policy)
        for k in 0..<(outer * inner) {
            let mk = m[k]
            y[k] = mk.isFinite ? mk + T.log(y[k]) : mk
        }
    }

    static func argmax(_ x: Tensor, axis rawAxis: Int, keepDims: Bool) throws -> Tensor {
        let axis = try ShapeRules.axis(rawAxis, rank: x.rank, op: OpCode.argmax.rawValue)
        guard x.shape[axis] > 0 else {
            throw TensorError.invalidArgument(op: OpCode.argmax.rawValue, detail: "axis \(axis) of \(shapeText(x.shape)) is empty")
        }
        let (outer, extent, inner) = ShapeRules.split(x.shape, at: axis)
        let y = Tensor(uninitialized: reducedShape(x.shape, axes: [axis], keepDims: keepDims), dtype: .int64)
        let py = y.elements(Int64.self)
        func run<T: KernelFloat>(_ px: UnsafeMutablePointer<T>) {
            for o in 0..<outer {
                for i in 0..<inner {
                    var best = px[o * extent * inner + i], index = 0
                    if !best.isNaN {
                        for r in 1..<extent {
                            let v = px[(o * extent + r) * inner + i]
                            if v.isNaN { index = r; break }   // NaN wins, as in NumPy
                            if v > best { best = v; index = r }
                        }
                    }
                    py[o * inner + i] = Int64(index)
                }
            }
        }
        if x.dtype == .float64 { run(x.elements(Double.self)) } else { run(x.elements(Float.self)) }
        return y
    }
}
