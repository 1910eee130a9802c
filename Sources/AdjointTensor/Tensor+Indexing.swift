import AdjointIR

/// One entry of a tensor subscript, NumPy's basic and (leading) advanced indexing:
///
/// | entry | selects | axis |
/// |---|---|---|
/// | `2`, `-1` | one element (negative: from the end) | dropped |
/// | `1..<3`, `..<(-1)`, `2...`, `...(-2)` | a range (negative bounds from the end) | kept |
/// | `.slice(from, to, step: s)` | every `s`-th element, backwards when `s < 0` | kept |
/// | `.all` | the whole axis | kept |
/// | `.newAxis` | nothing: inserts an axis of extent 1 | added |
/// | an integer tensor | the elements at its indices (leading entries only; several broadcast together and pick points) | replaced by the indices' shape |
///
/// Bounds that do not fit throw ``TensorError/sliceOutOfBounds(op:shape:axis:requested:)`` (no
/// silent clamping); entries cover the leading axes and the rest are taken whole.
public struct TensorIndex {
    enum Kind {
        case single(Int)
        case range(lower: Int?, upper: Int?, inclusive: Bool, step: Int)
        case newAxis
        case indices(Tensor)
    }
    let kind: Kind

    /// The whole axis.
    public static var all: TensorIndex { TensorIndex(kind: .range(lower: nil, upper: nil, inclusive: false, step: 1)) }
    /// A new axis of extent 1 (`unsqueeze`).
    public static var newAxis: TensorIndex { TensorIndex(kind: .newAxis) }
    /// Elements `from, from + step, …` up to but excluding `to`. With `step < 0`, `from` defaults to
    /// the last element and `to` to just before the first, so `.slice(step: -1)` reverses the axis.
    /// Negative `from`/`to` count from the end.
    public static func slice(_ from: Int? = nil, _ to: Int? = nil, step: Int = 1) -> TensorIndex {
        TensorIndex(kind: .range(lower: from, upper: to, inclusive: false, step: step))
    }
}

/// What can stand in a tensor subscript: integers, ranges of integers (all five kinds),
/// ``TensorIndex`` and integer tensors.
public protocol TensorIndexConvertible {
    var tensorIndex: TensorIndex { get }
}

extension TensorIndex: TensorIndexConvertible { public var tensorIndex: TensorIndex { self } }

// `x[.all, .newAxis, .slice(step: 2)]`: the entries by their short names where a subscript expects
// any ``TensorIndexConvertible``.
extension TensorIndexConvertible where Self == TensorIndex {
    public static var all: TensorIndex { TensorIndex.all }
    public static var newAxis: TensorIndex { TensorIndex.newAxis }
    public static func slice(_ from: Int? = nil, _ to: Int? = nil, step: Int = 1) -> TensorIndex { TensorIndex.slice(from, to, step: step) }
}
extension Int: TensorIndexConvertible { public var tensorIndex: TensorIndex { TensorIndex(kind: .single(self)) } }
extension Tensor: TensorIndexConvertible { public var tensorIndex: TensorIndex { TensorIndex(kind: .indices(self)) } }
extension Range: TensorIndexConvertible where Bound == Int {
    public var tensorIndex: TensorIndex { TensorIndex(kind: .range(lower: lowerBound, upper: upperBound, inclusive: false, step: 1)) }
}
extension ClosedRange: TensorIndexConvertible where Bound == Int {
    public var tensorIndex: TensorIndex { TensorIndex(kind: .range(lower: lowerBound, upper: upperBound, inclusive: true, step: 1)) }
}
extension PartialRangeFrom: TensorIndexConvertible where Bound == Int {
    public var tensorIndex: TensorIndex { TensorIndex(kind: .range(lower: lowerBound, upper: nil, inclusive: false, step: 1)) }
}
extension PartialRangeUpTo: TensorIndexConvertible where Bound == Int {
    public var tensorIndex: TensorIndex { TensorIndex(kind: .range(lower: nil, upper: upperBound, inclusive: false, step: 1)) }
}
extension PartialRangeThrough: TensorIndexConvertible where Bound == Int {
    public var tensorIndex: TensorIndex { TensorIndex(kind: .range(lower: nil, upper: upperBound, inclusive: true, step: 1)) }
}

extension Tensor {
    /// NumPy-style indexing (see ``TensorIndex``): `x[1]`, `x[..<(-1)]`, `x[.all, .slice(step: 2)]`,
    /// `x[.newAxis]`, `z[Tensor.arange(0, 4, dtype: .int64), labels]`. Every form is built from
    /// differentiable operators (slice, gather, reshape), so it works under every transform.
    public subscript(_ indices: any TensorIndexConvertible...) -> Tensor {
        get throws { try indexed(indices.map(\.tensorIndex)) }
    }

    /// The subscript's selection for a list of entries.
    public func indexed(_ entries: [TensorIndex]) throws -> Tensor {
        let op = "subscript"
        // Leading integer tensors index points of the leading axes; the rest is basic indexing.
        let points = entries.prefix { if case .indices = $0.kind { return true } else { return false } }
        let basic = entries.dropFirst(points.count)
        if basic.contains(where: { if case .indices = $0.kind { return true } else { return false } }) {
            throw TensorError.invalidArgument(op: op, detail: "integer tensor indices must come first (x[rows, cols, 1..<3]); to index another axis use gather(_:axis:) or takeAlong(_:axis:)")
        }
        let consumed = points.count + basic.filter { if case .newAxis = $0.kind { return false } else { return true } }.count
        guard consumed <= rank else {
            throw TensorError.invalidArgument(op: op, detail: "\(consumed) indices for a tensor of rank \(rank), shape \(shapeText(shape))")
        }
        // Basic entries on axes points.count..<rank: one slice over the bounding block, a gather
        // per axis whose selection is not a contiguous ascending run, one reshape at the end.
        var starts = [Int](repeating: 0, count: rank), ends = shape
        var picks: [(axis: Int, offsets: [Int])] = []
        var resultShape: [Int] = []          // of the basic part, after the point axes
        var axis = points.count
        for entry in basic {
            switch entry.kind {
            case .newAxis:
                resultShape.append(1)
            case let .single(i):
                let n = shape[axis], j = i < 0 ? i + n : i
                guard 0 <= j, j < n else {
                    throw TensorError.indexOutOfRange(op: op, index: i, bound: n, position: "axis \(axis) of a tensor of shape \(shapeText(shape))")
                }
                (starts[axis], ends[axis]) = (j, j + 1)
                axis += 1
            case let .range(lower, upper, inclusive, step):
                let selected = try Self.rangeElements(lower: lower, upper: upper, inclusive: inclusive, step: step,
                                                      extent: shape[axis], axis: axis, shape: shape, op: op)
                if let first = selected.first, let last = selected.last {
                    (starts[axis], ends[axis]) = (Swift.min(first, last), Swift.max(first, last) + 1)
                    if step != 1 { picks.append((axis, selected.map { $0 - starts[axis] })) }
                } else {
                    (starts[axis], ends[axis]) = (0, 0)
                }
                resultShape.append(selected.count)
                axis += 1
            case .indices:
                break
            }
        }
        resultShape += shape[axis...]
        var x = self
        if starts != Array(repeating: 0, count: rank) || ends != shape { x = try x.slice(starts: starts, ends: ends) }
        for (axis, offsets) in picks {
            x = try x.gather(Tensor(offsets.map(Int64.init)), axis: axis)
        }
        if !points.isEmpty {
            let components = points.map { entry -> Tensor in
                if case let .indices(t) = entry.kind { return t }
                preconditionFailure("points holds integer tensors only")
            }
            x = try x.gatherPoints(components, op: op)
        }
        let pointShape = Array(x.shape[..<(x.rank - (rank - points.count))])
        let target = pointShape + resultShape
        return x.shape == target ? x : try x.reshaped(target)
    }

    /// The elements a range entry selects on an axis of `extent` elements.
    static func rangeElements(lower: Int?, upper: Int?, inclusive: Bool, step: Int, extent n: Int, axis: Int,
                              shape: [Int], op: String) throws -> [Int] {
        func text() -> String {
            let l = lower.map(String.init) ?? "", u = upper.map(String.init) ?? ""
            return step == 1 ? "\(l)\(inclusive ? "..." : "..<")\(u)" : "slice(\(l), \(u), step: \(step))"
        }
        guard step != 0 else { throw TensorError.invalidArgument(op: op, detail: "slice step must not be zero (axis \(axis))") }
        func resolve(_ v: Int) -> Int { v < 0 ? v + n : v }
        if step > 0 {
            let lo = lower.map(resolve) ?? 0
            var hi = upper.map(resolve) ?? n
            if inclusive, upper != nil { hi = hi == .max ? hi : hi + 1 }   // Int.max: out of bounds anyway
            guard 0 <= lo, lo <= hi, hi <= n else {
                throw TensorError.sliceOutOfBounds(op: op, shape: shape, axis: axis, requested: text())
            }
            return elements(from: lo, count: hi > lo ? Int(UInt(hi - lo - 1) / step.magnitude) + 1 : 0, step: step)
        }
        let lo = lower.map(resolve) ?? n - 1
        var hi = upper.map(resolve) ?? -1
        if inclusive, upper != nil { hi = hi == .min ? hi : hi - 1 }
        guard -1 <= hi, hi <= lo, lo < n || (n == 0 && lo == hi) else {
            throw TensorError.sliceOutOfBounds(op: op, shape: shape, axis: axis, requested: text())
        }
        return elements(from: lo, count: lo > hi ? Int(UInt(lo - hi - 1) / step.magnitude) + 1 : 0, step: step)
    }

    /// `from, from + step, …`, `count` of them, all within the axis (so no sum overflows, whatever
    /// the step: `Swift.stride` would compute one element past the end, which traps for a step
    /// near `Int.max`).
    private static func elements(from start: Int, count: Int, step: Int) -> [Int] {
        var out = [Int](repeating: start, count: count)
        for k in out.indices.dropFirst() { out[k] = out[k - 1] &+ step }
        return out
    }

    /// NumPy's advanced indexing of the leading `components.count` axes: the integer tensors
    /// broadcast to one shape `B` and the result is `B + shape[components.count...]`, element
    /// `[b…, r…] = self[c0[b…], c1[b…], …, r…]`. Negative indices count from the end.
    func gatherPoints(_ components: [Tensor], op: String) throws -> Tensor {
        let k = components.count
        guard k <= rank else {
            throw TensorError.invalidArgument(op: op, detail: "\(k) index tensors for a tensor of rank \(rank), shape \(shapeText(shape))")
        }
        var broadcastShape: [Int] = []
        for (i, c) in components.enumerated() {
            guard c.dtype == .int64 || c.dtype == .int32 else {
                throw TensorError.dtypeMismatch(op: op, detail: "index tensor \(i) must be i32 or i64, got \(c.dtype)")
            }
            broadcastShape = try ShapeRules.broadcast(broadcastShape, c.shape, op: op)
        }
        // flat = Σ c_i · stride_i over the leading axes, each c_i checked against its extent.
        let leading = Array(shape[..<k]), strides = ShapeRules.contiguousStrides(leading)
        let flat: Tensor
        if components.allSatisfy({ $0.traceTags.isEmpty }) {
            var sum = [Int64](repeating: 0, count: broadcastShape.reduce(1, *))
            for (i, c) in components.enumerated() {
                let n = shape[i]
                let values = try c.broadcast(to: broadcastShape).scalars(as: Int64.self)
                for (e, v) in values.enumerated() {
                    let j = v < 0 ? v + Int64(n) : v
                    guard 0 <= j, j < n else {
                        throw TensorError.indexOutOfRange(op: op, index: Int(v), bound: n,
                                                          position: "element \(e) of index tensor \(i) (axis \(i) of shape \(shapeText(shape)); negative indices count from the end)")
                    }
                    sum[e] += j * Int64(strides[i])
                }
            }
            flat = try Tensor(sum, shape: broadcastShape)
        } else {
            // Traced indices cannot be read, and the arithmetic kernels are floating-point: the
            // sum runs in float64 (exact below 2^53 elements). An out-of-range component makes the
            // flat index -1, which gather refuses, rather than the index of another point.
            var sum = try Tensor.zeros(broadcastShape, dtype: .float64), valid: Tensor?
            for (i, c) in components.enumerated() {
                let n = Double(shape[i])
                var index = try c.cast(to: .float64)
                index = try Tensor.select(index.less(0.0), index + n, index)
                let ok = try index.greaterEqual(0.0).cast(to: .float64) * index.less(n).cast(to: .float64)
                valid = try valid.map { try $0 * ok } ?? ok
                sum = try sum + index * Double(strides[i])
            }
            flat = try Tensor.select(valid!.greater(0.0), sum, -1.0).cast(to: .int64)
        }
        let rows = try reshaped([leading.reduce(1, *)] + shape[k...])
        return try rows.gather(flat, axis: 0)
    }

    /// `self[i…, indices[i…, j, …], …]` along `axis` (NumPy's `take_along_axis`): `indices` has this
    /// tensor's rank and broadcasts against it on every other axis; the result has `indices`'
    /// extent on `axis`. Negative indices count from the end. Differentiable (a gather).
    public func takeAlong(_ indices: Tensor, axis rawAxis: Int) throws -> Tensor {
        let op = "takeAlong"
        let axis = try ShapeRules.axis(rawAxis, rank: rank, op: op)
        guard indices.rank == rank else {
            throw TensorError.shapeMismatch(op: op, detail: "indices have rank \(indices.rank), shape \(shapeText(indices.shape)); they need this tensor's rank \(rank) (shape \(shapeText(shape))): add axes of extent 1 with unsqueezed(axis:)")
        }
        var outShape = shape
        outShape[axis] = indices.shape[axis]
        for a in 0..<rank where a != axis && indices.shape[a] != shape[a] && indices.shape[a] != 1 {
            throw TensorError.shapeMismatch(op: op, detail: "indices \(shapeText(indices.shape)) do not broadcast against \(shapeText(shape)) on axis \(a)")
        }
        let index = try indices.broadcast(to: outShape)
        // Point indices: the position along each axis, the given index along `axis`.
        var components: [Tensor] = []
        for a in 0..<rank {
            if a == axis { components.append(index); continue }
            var grid = [Int](repeating: 1, count: rank)
            grid[a] = outShape[a]
            components.append(try Tensor.arange(0, Double(outShape[a]), dtype: .int64).reshaped(grid))
        }
        return try gatherPoints(components, op: op)
    }

    /// NumPy/TensorFlow `gather_nd`: `indices` of shape `B + [K]` with `K ≤ rank` picks the points
    /// `self[indices[b…, 0], …, indices[b…, K-1], …]`; the result has shape `B + shape[K...]`.
    public func gatherND(_ indices: Tensor) throws -> Tensor {
        let op = "gatherND"
        guard let k = indices.shape.last else {
            throw TensorError.shapeMismatch(op: op, detail: "indices need rank ≥ 1 (the last axis lists the coordinates), got a rank-0 tensor")
        }
        let components = try (0..<k).map { i in
            try indices.slice(starts: Array(repeating: 0, count: indices.rank - 1) + [i], ends: Array(indices.shape.dropLast()) + [i + 1])
                .reshaped(Array(indices.shape.dropLast()))
        }
        return try gatherPoints(components, op: op)
    }

    /// A new axis of extent 1 at `axis` (`-1` appends one), NumPy's `expand_dims`.
    public func unsqueezed(axis rawAxis: Int) throws -> Tensor {
        let axis = try ShapeRules.axis(rawAxis, rank: rank + 1, op: "unsqueezed")
        var s = shape
        s.insert(1, at: axis)
        return try reshaped(s)
    }

    /// The axis `axis`, which must have extent 1, removed.
    public func squeezed(axis rawAxis: Int) throws -> Tensor {
        let axis = try ShapeRules.axis(rawAxis, rank: rank, op: "squeezed")
        guard shape[axis] == 1 else {
            throw TensorError.shapeMismatch(op: "squeezed", detail: "axis \(axis) of shape \(shapeText(shape)) has extent \(shape[axis]), not 1")
        }
        var s = shape
        s.remove(at: axis)
        return try reshaped(s)
    }

    /// Indexed updates in the style of JAX's `x.at[…]`: `try x.at[rows, cols].add(u)` is `x` with
    /// `u` (broadcast to the selection) added at the selected elements; repeated indices
    /// accumulate. Any subscript selection works.
    public var at: IndexedUpdates { IndexedUpdates(base: self) }
}

/// `x.at[…]`: see ``Tensor/at``.
public struct IndexedUpdates {
    let base: Tensor
    public subscript(_ indices: any TensorIndexConvertible...) -> IndexedSelection {
        IndexedSelection(base: base, entries: indices.map(\.tensorIndex))
    }
}

/// The elements `x.at[…]` selects.
public struct IndexedSelection {
    let base: Tensor
    let entries: [TensorIndex]

    /// The selection's element positions in the flattened base.
    private func positions() throws -> Tensor {
        try Tensor.arange(0, Double(base.elementCount), dtype: .int64).reshaped(base.shape).indexed(entries)
    }

    /// The base with `updates` (broadcast to the selection's shape) added at the selection;
    /// elements selected more than once receive every update. A scatter-add: differentiable with
    /// respect to both the base and the updates.
    public func add(_ updates: Tensor) throws -> Tensor {
        let where_ = try positions()
        let values = try updates.broadcast(to: where_.shape).reshaped([where_.elementCount])
        return try base.reshaped([base.elementCount]).scatterAdd(where_.reshaped([where_.elementCount]), values, axis: 0)
            .reshaped(base.shape)
    }

    /// ``add(_:)`` with a scalar of the base's dtype.
    public func add<S: TensorScalar>(_ value: S) throws -> Tensor { try add(base.scalarLike(value)) }

    /// The selected elements (the same as subscripting the base).
    public func get() throws -> Tensor { try base.indexed(entries) }
}
