import AdjointTensor

/// Order-independent summation of floating-point contributions: the arithmetic of the reproducible
/// all-reduce.
///
/// An ordinary sum of floating-point numbers depends on the order of its additions, so a gradient
/// summed over 2 ranks differs in its last bits from the same gradient summed over 4. Here every
/// contribution is first turned into an integer on a grid fixed for its element, integers are
/// added (exactly, in any order, on any rank), and the total is rounded to the tensor's dtype once.
///
/// The grid of an element comes from the largest magnitude among all its contributions, on all
/// ranks: with `2^E` the smallest power of two above every `|x|`, contributions are counted in
/// units of `2^(E − 100)` in a 128-bit integer. Every contribution whose magnitude is at least
/// `2^(E − 47)` (float64) or `2^(E − 76)` (float32) is represented exactly, so the result is the
/// exact sum rounded once to nearest-even; smaller ones are rounded to the grid first (to nearest,
/// ties to even), which is still a function of the contribution alone. Either way the result
/// depends only on the multiset of contributions: not on their order, their grouping, or how many
/// ranks held them. NaN and infinities propagate as IEEE addition would (`+∞ + −∞` is NaN).
///
/// The three phases are separate so a ``Communicator`` can combine the first two across ranks:
/// ``bounds(of:count:)`` (combined with ``combineBounds(_:_:)``, a maximum), ``accumulate(_:bounds:into:)``
/// (combined by integer addition) and ``round(_:bounds:dtype:shape:)``.
public enum ReproducibleSum {
    /// Bits of the grid below the largest magnitude's power of two.
    public static let windowBits = 100
    /// Contributions one element may have in total (over every rank) before its 128-bit integer
    /// could overflow.
    public static let maximumContributions = 1 << 26

    /// An element none of whose contributions is nonzero.
    static let noMagnitude: Int16 = .min
    /// Bounds at or above this hold non-finite flags instead of an exponent.
    static let specialBase: Int16 = 0x4000
    static let nanFlag: Int16 = 1, positiveInfinityFlag: Int16 = 2, negativeInfinityFlag: Int16 = 4

    /// The sum of `contributions` (tensors of one shape and one floating dtype), element by element,
    /// reproducibly: equal for every order and grouping of the same contributions.
    ///
    /// - Throws: `DistributedError.invalidContributions` for an empty list, mixed shapes or dtypes,
    ///   a dtype other than float32 or float64, or more than ``maximumContributions``.
    public static func sum(_ contributions: [Tensor]) throws -> Tensor {
        guard let first = contributions.first else { throw DistributedError.invalidContributions(detail: "no contributions to sum") }
        try validate(contributions, shape: first.shape, dtype: first.dtype)
        let (dtype, shape) = (first.dtype, first.shape)
        let bounds = self.bounds(of: contributions, count: first.elementCount)
        var totals = [Int128](repeating: 0, count: bounds.count)
        accumulate(contributions, bounds: bounds, into: &totals)
        return try round(totals, bounds: bounds, dtype: dtype, shape: shape)
    }

    /// Checks that every contribution has `shape` and `dtype` (float32 or float64) and that there
    /// are at most ``maximumContributions``.
    static func validate(_ contributions: [Tensor], shape: [Int], dtype: DType) throws {
        guard dtype == .float32 || dtype == .float64 else {
            throw DistributedError.invalidContributions(detail: "the reproducible sum takes float32 or float64 tensors, got \(dtype)")
        }
        for (index, tensor) in contributions.enumerated() where tensor.dtype != dtype || tensor.shape != shape {
            throw DistributedError.invalidContributions(detail: "contribution \(index) is \(tensor.dtype)\(tensor.shape), expected \(dtype)\(shape)")
        }
        guard contributions.count <= maximumContributions else {
            throw DistributedError.invalidContributions(detail: "\(contributions.count) contributions exceed the limit of \(maximumContributions)")
        }
    }

    // MARK: Phase 1: the grid of each element

    /// Per element, `E` with every contribution's `|x| < 2^E`; or a flag word for NaN/±∞; or
    /// "no nonzero contribution".
    public static func bounds(of contributions: [Tensor], count: Int) -> [Int16] {
        var bounds = [Int16](repeating: noMagnitude, count: count)
        bounds.withUnsafeMutableBufferPointer { computeBounds(of: contributions, into: $0) }
        return bounds
    }

    /// ``bounds(of:count:)`` into `bounds` (every element overwritten), in element chunks on the
    /// worker threads (each element's bound is the same however the elements are chunked).
    static func computeBounds(of contributions: [Tensor], into bounds: UnsafeMutableBufferPointer<Int16>) {
        Parallelism.forEachRange(bounds.count) { range in
            for index in range { bounds[index] = noMagnitude }
            for tensor in contributions {
                if tensor.dtype == .float32 { mergeBounds(tensor.pointer(Float.self), range, bounds) } else { mergeBounds(tensor.pointer(Double.self), range, bounds) }
            }
        }
    }

    private static func mergeBounds<T: BinaryFloatingPoint>(_ values: UnsafeMutablePointer<T>, _ range: Range<Int>, _ bounds: UnsafeMutableBufferPointer<Int16>) {
        for index in range { bounds[index] = combineBounds(bounds[index], bound(of: values[index])) }
    }

    @inline(__always)
    static func bound<T: BinaryFloatingPoint>(of x: T) -> Int16 {
        if x.isNaN { return specialBase | nanFlag }
        if x.isInfinite { return specialBase | (x > 0 ? positiveInfinityFlag : negativeInfinityFlag) }
        if x == 0 { return noMagnitude }
        return Int16(truncatingIfNeeded: Int(x.exponent) + 1)
    }

    /// Combines two elements' bounds (commutative and associative: the all-reduce operator).
    @inline(__always)
    public static func combineBounds(_ a: Int16, _ b: Int16) -> Int16 {
        if a >= specialBase || b >= specialBase {
            return specialBase | (a >= specialBase ? a & 7 : 0) | (b >= specialBase ? b & 7 : 0)
        }
        return max(a, b)
    }

    // MARK: Phase 2: integers on the grid

    /// Adds every contribution, as an integer count of its element's grid unit, to `totals`.
    public static func accumulate(_ contributions: [Tensor], bounds: [Int16], into totals: inout [Int128]) {
        precondition(totals.count == bounds.count, "ReproducibleSum.accumulate: \(totals.count) totals for \(bounds.count) bounds")
        bounds.withUnsafeBufferPointer { bounds in totals.withUnsafeMutableBufferPointer { accumulate(contributions, bounds: bounds, into: $0, startingFromZero: false) } }
    }

    /// ``accumulate(_:bounds:into:)`` on buffers, in element chunks on the worker threads; with
    /// `startingFromZero` the totals' old contents are ignored.
    static func accumulate(_ contributions: [Tensor], bounds: UnsafeBufferPointer<Int16>, into totals: UnsafeMutableBufferPointer<Int128>, startingFromZero: Bool) {
        for tensor in contributions {
            precondition(tensor.elementCount == bounds.count, "ReproducibleSum.accumulate: contribution of \(tensor.elementCount) elements for \(bounds.count) bounds")
        }
        Parallelism.forEachRange(bounds.count) { range in
            if startingFromZero { for index in range { totals[index] = 0 } }
            for tensor in contributions {
                if tensor.dtype == .float32 { add(tensor.pointer(Float.self), range, bounds, totals) } else { add(tensor.pointer(Double.self), range, bounds, totals) }
            }
        }
    }

    private static func add<T: BinaryFloatingPoint>(_ values: UnsafeMutablePointer<T>, _ range: Range<Int>, _ bounds: UnsafeBufferPointer<Int16>,
                                                    _ totals: UnsafeMutableBufferPointer<Int128>) {
        for index in range {
            let x = values[index], bound = bounds[index]
            guard bound < specialBase, bound != noMagnitude, x != 0 else { continue }
            totals[index] &+= gridUnits(x, bound: Int(bound))
        }
    }

    /// `x / 2^(bound − windowBits)` rounded to the nearest integer (ties to even); `|x| < 2^bound`.
    @inline(__always)
    static func gridUnits<T: BinaryFloatingPoint>(_ x: T, bound: Int) -> Int128 {
        // x = significand · 2^(exponent − significandBitCount), significand an integer below 2^(p).
        let significand = UInt64(x.significandBitPattern) | (x.isNormal ? UInt64(1) << UInt64(T.significandBitCount) : 0)
        let exponent = x.isNormal ? Int(x.exponent) : Int(T.leastNormalMagnitude.exponent)
        let shift = exponent - T.significandBitCount - (bound - windowBits)
        var magnitude: UInt128
        if shift >= 0 {
            magnitude = UInt128(significand) << UInt128(shift)
        } else if -shift >= 64 {
            magnitude = 0  // below half a unit: significand < 2^53 ≤ 2^(−shift − 1)
        } else {
            let drop = UInt64(-shift)
            let kept = significand >> drop, rest = significand & ((1 << drop) - 1), half = UInt64(1) << (drop - 1)
            magnitude = UInt128(kept + (rest > half || (rest == half && kept & 1 == 1) ? 1 : 0))
        }
        let units = Int128(magnitude)
        return x.sign == .minus ? -units : units
    }

    // MARK: Between ranks: limbs

    /// Bits of each of the two lower limbs.
    static let limbBits = 37

    /// Each total as three 64-bit limbs `(l0, l1, l2)` with `total = l0 + l1·2^37 + l2·2^74`,
    /// `0 ≤ l0, l1 < 2^37`: limbs of up to 2^26 ranks add in 64 bits without overflow, so MPI's own
    /// integer sum adds totals exactly, and ``join(_:into:)`` reassembles them.
    static func split(_ totals: UnsafeBufferPointer<Int128>, into limbs: UnsafeMutableBufferPointer<Int64>) {
        let mask = (Int128(1) << Int128(limbBits)) - 1
        Parallelism.forEachRange(totals.count) { range in
            for index in range {
                let total = totals[index]
                limbs[3 * index] = Int64(truncatingIfNeeded: total & mask)
                limbs[3 * index + 1] = Int64(truncatingIfNeeded: (total >> Int128(limbBits)) & mask)
                limbs[3 * index + 2] = Int64(truncatingIfNeeded: total >> Int128(2 * limbBits))
            }
        }
    }

    /// The totals from summed limbs (the inverse of ``split(_:into:)``, after adding).
    static func join(_ limbs: UnsafeBufferPointer<Int64>, into totals: UnsafeMutableBufferPointer<Int128>) {
        Parallelism.forEachRange(totals.count) { range in
            for index in range {
                totals[index] = Int128(limbs[3 * index]) &+ (Int128(limbs[3 * index + 1]) << Int128(limbBits)) &+ (Int128(limbs[3 * index + 2]) << Int128(2 * limbBits))
            }
        }
    }

    // MARK: Phase 3: one rounding

    /// The totals as a tensor of `dtype`: each `total · 2^(bound − windowBits)` rounded once to
    /// nearest-even (overflowing to ±∞), or the non-finite value its flags say.
    public static func round(_ totals: [Int128], bounds: [Int16], dtype: DType, shape: [Int]) throws -> Tensor {
        precondition(totals.count == bounds.count, "ReproducibleSum.round: \(totals.count) totals for \(bounds.count) bounds")
        return try totals.withUnsafeBufferPointer { totals in try bounds.withUnsafeBufferPointer { try round(totals, bounds: $0, dtype: dtype, shape: shape) } }
    }

    /// ``round(_:bounds:dtype:shape:)`` on buffers, in element chunks on the worker threads.
    static func round(_ totals: UnsafeBufferPointer<Int128>, bounds: UnsafeBufferPointer<Int16>, dtype: DType, shape: [Int]) throws -> Tensor {
        guard shape.reduce(1, *) == totals.count else {
            throw DistributedError.invalidContributions(detail: "\(totals.count) totals for shape \(shape)")
        }
        let result = Tensor(uninitialized: shape, dtype: dtype)
        let floats = result.rawPointer.assumingMemoryBound(to: Float.self), doubles = result.rawPointer.assumingMemoryBound(to: Double.self)
        Parallelism.forEachRange(totals.count) { range in
            if dtype == .float32 {
                for index in range { floats[index] = value(totals[index], bound: bounds[index], as: Float.self) }
            } else {
                for index in range { doubles[index] = value(totals[index], bound: bounds[index], as: Double.self) }
            }
        }
        return result
    }

    @inline(__always)
    static func value<T: BinaryFloatingPoint>(_ total: Int128, bound: Int16, as _: T.Type) -> T {
        if bound >= specialBase {
            let flags = bound & 7
            if flags & nanFlag != 0 || flags & (positiveInfinityFlag | negativeInfinityFlag) == positiveInfinityFlag | negativeInfinityFlag { return .nan }
            return flags & positiveInfinityFlag != 0 ? .infinity : -.infinity
        }
        guard bound != noMagnitude, total != 0 else { return 0 }
        let magnitude = total.magnitude
        let scale = Int(bound) - windowBits
        let width = UInt128.bitWidth - magnitude.leadingZeroBitCount
        let fraction = T.significandBitCount
        let valueExponent = width - 1 + scale
        // Bits kept: the precision, fewer for a subnormal result.
        let minimumExponent = 2 - (1 << (T.exponentBitCount - 1))  // −126, −1022
        let kept = valueExponent >= minimumExponent ? fraction + 1 : fraction + 1 - (minimumExponent - valueExponent)
        let drop = width - kept
        var significand: UInt64
        if drop <= 0 {
            significand = UInt64(truncatingIfNeeded: magnitude) << UInt64(-drop)
        } else if drop > width {
            significand = 0  // below half the smallest subnormal
        } else {
            let high = magnitude >> UInt128(drop)
            let rest = magnitude & ((UInt128(1) << UInt128(drop)) - 1), half = UInt128(1) << UInt128(drop - 1)
            significand = UInt64(truncatingIfNeeded: high + (rest > half || (rest == half && high & 1 == 1) ? 1 : 0))
        }
        // value = significand · 2^unit; its bit pattern is ((unit − subnormal unit) << fraction) + significand
        // for normal and subnormal results alike (a carry into the exponent field is the next binade).
        let unit = scale + drop, subnormalUnit = minimumExponent - fraction
        let field = unit - subnormalUnit
        let infinityField = (1 << T.exponentBitCount) - 1
        let result: T
        if significand == 0 {
            result = 0
        } else if field >= infinityField {
            result = .infinity
        } else {
            let bits = (UInt64(field) << UInt64(fraction)) &+ significand
            let exponentBits = bits >> UInt64(fraction)
            result = exponentBits >= UInt64(infinityField) ? .infinity
                : T(sign: .plus, exponentBitPattern: T.RawExponent(exponentBits), significandBitPattern: T.RawSignificand(bits & ((1 << UInt64(fraction)) - 1)))
        }
        return total < 0 ? -result : result
    }
}
