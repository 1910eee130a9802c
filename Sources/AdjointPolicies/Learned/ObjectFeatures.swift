import Foundation

/// What the learned policy knows about an object: how it has been requested so far.
public struct ObjectHistory: Sendable {
    public var firstAccess: Int64
    public var lastAccess: Int64
    public var count: Int64
    public var size: Int64
    /// Exponential moving average (α = 0.3) of the gaps between requests (0 before the second).
    public var meanGap: Double
    public var lastGap: Int64

    public init(at time: Int64, size: Int64) {
        firstAccess = time
        lastAccess = time
        count = 1
        self.size = size
        meanGap = 0
        lastGap = 0
    }

    mutating func record(at time: Int64, size: Int64) {
        let gap = time - lastAccess
        meanGap = count == 1 ? Double(gap) : 0.7 * meanGap + 0.3 * Double(gap)
        lastGap = gap
        lastAccess = time
        count += 1
        self.size = size
    }
}

/// The per-object features of the learned policy, at request index `now` (all log-scaled with
/// ``ObjectFeatures/logScale(_:)``, log(1 + x) to within 1e-9):
///
/// | # | feature |
/// |---|---|
/// | 0 | recency: log(1 + now − last request) |
/// | 1 | frequency: log(1 + requests so far) |
/// | 2 | age: log(1 + now − first request) |
/// | 3 | size: log(1 + bytes) |
/// | 4 | mean inter-arrival gap: log(1 + EMA of gaps) (0 before the second request) |
/// | 5 | overdue: log(1 + recency / (1 + mean gap)) — how late the next request is by the object's own rhythm |
/// | 6 | last gap: log(1 + the latest gap) |
public enum ObjectFeatures {
    public static let count = 7
    public static let names = ["recency", "frequency", "age", "size", "meanGap", "overdue", "lastGap"]

    @inline(__always)
    public static func write(_ h: ObjectHistory, now: Int64, into out: UnsafeMutablePointer<Double>) {
        let recency = Double(now - h.lastAccess)
        out[0] = logScale(recency)
        out[1] = logScale(Double(h.count))
        out[2] = logScale(Double(now - h.firstAccess))
        out[3] = logScale(Double(h.size))
        out[4] = logScale(h.meanGap)
        out[5] = logScale(recency / (1 + h.meanGap))
        out[6] = logScale(Double(h.lastGap))
    }

    /// log(1 + x) for x ≥ 0, within 1e-9 of `log1p` (tested), in a fixed sequence of arithmetic
    /// operations: a third of the instructions of the C library's `log1p`, which dominated the
    /// learned policy's evictions. With y = 1 + x = 2ᵉ·m, m ∈ [√½, √2): log y = e·ln 2 + 2·atanh t,
    /// t = (m − 1)/(m + 1), |t| < 0.172, atanh by its series to t⁹. Negative, NaN or infinite x
    /// give NaN (features are never those).
    @inline(__always)
    public static func logScale(_ x: Double) -> Double {
        let y = 1 + x
        guard y >= 1, y.isFinite else { return .nan }
        // Without a branch (which the processor would mispredict half the time): adding
        // 1 − √½'s bit distance carries into the exponent exactly when the significand ≥ √2.
        let shifted = y.bitPattern &+ (0x3ff0_0000_0000_0000 &- 0x3fe6_a09e_667f_3bcd)
        let e = Double(Int(shifted >> 52) - 0x3ff)
        let m = Double(bitPattern: (shifted & 0x000f_ffff_ffff_ffff) &+ 0x3fe6_a09e_667f_3bcd)
        let t = (m - 1) / (m + 1), t2 = t * t
        let series = 1 + t2 * (1.0 / 3 + t2 * (1.0 / 5 + t2 * (1.0 / 7 + t2 * (1.0 / 9))))
        return e * 0.6931471805599453 + 2 * t * series
    }
}

/// Per-feature standardisation `(x − mean) / std`, fitted on training data and saved with a model.
public struct FeatureNormalization: Codable, Equatable, Sendable {
    public var mean: [Double]
    public var std: [Double]

    public static let identity = FeatureNormalization(mean: [Double](repeating: 0, count: ObjectFeatures.count),
                                                      std: [Double](repeating: 1, count: ObjectFeatures.count))

    /// Mean and standard deviation of rows of `features` features (a std below 1e-6 becomes 1);
    /// ``identity`` when there is no complete row.
    public static func fit(_ rows: [Double], features d: Int = ObjectFeatures.count) -> FeatureNormalization {
        let n = rows.count / d
        guard n >= 1 else { return FeatureNormalization(mean: [Double](repeating: 0, count: d), std: [Double](repeating: 1, count: d)) }
        var mean = [Double](repeating: 0, count: d), variance = [Double](repeating: 0, count: d)
        for r in 0..<n { for j in 0..<d { mean[j] += rows[r * d + j] } }
        for j in 0..<d { mean[j] /= Double(n) }
        for r in 0..<n { for j in 0..<d { let x = rows[r * d + j] - mean[j]; variance[j] += x * x } }
        let std = variance.map { v -> Double in let s = (v / Double(n)).squareRoot(); return s < 1e-6 ? 1 : s }
        return FeatureNormalization(mean: mean, std: std)
    }

    @inline(__always)
    public func apply(_ x: UnsafeMutablePointer<Double>) {
        for j in 0..<mean.count { x[j] = (x[j] - mean[j]) / std[j] }
    }
}
