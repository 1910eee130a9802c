/// Shape arithmetic shared by the kernels and the derivative rules: broadcasting, strides, axes.
package enum ShapeRules {
    package static func contiguousStrides(_ shape: [Int]) -> [Int] {
        var strides = [Int](repeating: 1, count: shape.count)
        var s = 1
        for i in stride(from: shape.count - 1, through: 0, by: -1) {
            strides[i] = s
            s *= shape[i]
        }
        return strides
    }

    /// NumPy broadcasting of two shapes.
    package static func broadcast(_ a: [Int], _ b: [Int], op: String) throws -> [Int] {
        if a == b { return a }
        let rank = Swift.max(a.count, b.count)
        var out = [Int](repeating: 1, count: rank)
        for i in 0..<rank {
            let da = i < rank - a.count ? 1 : a[i - (rank - a.count)]
            let db = i < rank - b.count ? 1 : b[i - (rank - b.count)]
            if da == db || db == 1 { out[i] = da } else if da == 1 { out[i] = db } else {
                throw TensorError.shapeMismatch(
                    op: op, detail: "shapes \(shapeText(a)) and \(shapeText(b)) do not broadcast (axis \(i - rank): \(da) vs \(db))")
            }
        }
        return out
    }

    /// Strides that read a contiguous tensor of `shape` as if it had shape `out` (0 on broadcast axes).
    package static func broadcastStrides(_ shape: [Int], to out: [Int]) -> [Int] {
        let own = contiguousStrides(shape)
        var strides = [Int](repeating: 0, count: out.count)
        let lead = out.count - shape.count
        for i in 0..<shape.count where shape[i] != 1 || out[lead + i] == 1 {
            strides[lead + i] = shape[i] == 1 ? 0 : own[i]
        }
        return strides
    }

    /// Merges adjacent axes that every operand walks contiguously; drops size-1 axes.
    static func coalesce(_ shape: [Int], _ strides: [[Int]]) -> (shape: [Int], strides: [[Int]]) {
        var outShape: [Int] = []
        var outStrides = [[Int]](repeating: [], count: strides.count)
        for axis in 0..<shape.count where shape[axis] != 1 {
            if !outShape.isEmpty,
               strides.indices.allSatisfy({ strides[$0][axis] * shape[axis] == outStrides[$0].last! || (strides[$0][axis] == 0 && outStrides[$0].last! == 0) }) {
                outShape[outShape.count - 1] *= shape[axis]
                for k in strides.indices { outStrides[k][outStrides[k].count - 1] = strides[k][axis] }
            } else {
                outShape.append(shape[axis])
                for k in strides.indices { outStrides[k].append(strides[k][axis]) }
            }
        }
        if outShape.isEmpty {
            return ([1], strides.map { _ in [0] })
        }
        return (outShape, outStrides)
    }

    /// Normalizes one axis into `0 ..< rank`.
    package static func axis(_ axis: Int, rank: Int, op: String) throws -> Int {
        let a = axis < 0 ? axis + rank : axis
        guard a >= 0, a < rank else { throw TensorError.invalidAxis(op: op, axis: axis, rank: rank) }
        return a
    }

    /// Normalizes, sorts and de-duplicates axes; an empty list means every axis.
    package static func axes(_ axes: [Int], rank: Int, op: String) throws -> [Int] {
        if axes.isEmpty { return Array(0..<rank) }
        var out = Set<Int>()
        for a in axes {
            let n = try axis(a, rank: rank, op: op)
            guard out.insert(n).inserted else {
                throw TensorError.invalidArgument(op: op, detail: "axis \(a) is listed twice")
            }
        }
        return out.sorted()
    }

    /// Splits `shape` at `axis` into (product before, extent, product after).
    package static func split(_ shape: [Int], at axis: Int) -> (outer: Int, extent: Int, inner: Int) {
        (shape[..<axis].reduce(1, *), shape[axis], shape[(axis + 1)...].reduce(1, *))
    }

    static func checkShape(_ shape: [Int], op: String) throws {
        for (i, d) in shape.enumerated() where d < 0 {
            throw TensorError.invalidArgument(op: op, detail: "dimension \(i) of shape \(shapeText(shape)) is negative")
        }
    }
}

/// Iterates the rows of a (coalesced) broadcast: for each row of the output, the element offset of
/// every operand. The last axis is the row; `body` runs a tight loop over it.
struct BroadcastRows {
    let shape: [Int]
    let strides: [[Int]]

    init(shape: [Int], operandStrides: [[Int]]) {
        let c = ShapeRules.coalesce(shape, operandStrides)
        self.shape = c.shape
        self.strides = c.strides
    }

    var rowLength: Int { shape[shape.count - 1] }
    var rowCount: Int { shape.dropLast().reduce(1, *) }
    func innerStride(_ operand: Int) -> Int { strides[operand][shape.count - 1] }

    /// Calls `body(row, offsets)` for every row (in parallel chunks; rows of one chunk in order).
    func forEachRow(_ body: (_ row: Int, _ offsets: UnsafeMutableBufferPointer<Int>) -> Void) {
        let rows = rowCount
        let outer = Array(shape.dropLast())
        let k = strides.count
        let rowsPerChunk = Swift.max(1, Parallelism.elementChunk / Swift.max(1, rowLength))
        Parallelism.forEachRange(rows, chunkSize: rowsPerChunk) { range in
            var index = [Int](repeating: 0, count: outer.count)
            var rem = range.lowerBound
            for d in stride(from: outer.count - 1, through: 0, by: -1) {
                index[d] = rem % outer[d]
                rem /= outer[d]
            }
            let offsets = UnsafeMutableBufferPointer<Int>.allocate(capacity: k)
            defer { offsets.deallocate() }
            for j in 0..<k {
                var o = 0
                for d in 0..<outer.count { o += index[d] * strides[j][d] }
                offsets[j] = o
            }
            for row in range {
                body(row, offsets)
                // Advance the multi-index with carry.
                var d = outer.count - 1
                while d >= 0 {
                    index[d] += 1
                    for j in 0..<k { offsets[j] += strides[j][d] }
                    if index[d] < outer[d] { break }
                    for j in 0..<k { offsets[j] -= strides[j][d] * outer[d] }
                    index[d] = 0
                    d -= 1
                }
            }
        }
    }
}
