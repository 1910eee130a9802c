/// Hashing shared by the admission sketches: row `r`'s counter of an id, from SplitMix64's
/// finaliser of the id under a per-row seed (independent rows, uniform over a power-of-two width).
enum SketchHash {
    @inline(__always)
    static func slot(_ id: UInt64, row: Int, mask: Int) -> Int {
        Int(truncatingIfNeeded: SplitMix64.mix(id &+ UInt64(row + 1) &* SplitMix64.gamma)) & mask
    }

    /// The smallest power of two ≥ `n`, within `minimum ... maximum` (powers of two).
    static func width(_ n: Int, minimum: Int, maximum: Int) -> Int {
        var w = minimum
        while w < n, w < maximum { w <<= 1 }
        return w
    }
}

/// TinyLFU's frequency sketch (Einziger, Friedman, Manes 2017): a count-min sketch of four rows
/// of 4-bit counters (saturating at 15) that estimates how often an id was counted recently. After
/// `sample` additions every counter is halved ("reset"), so old popularity fades and the estimate
/// is a frequency over roughly the last `sample` requests.
///
/// Memory is `4 × width` bytes, fixed at creation: independent of how many distinct ids are
/// counted. An estimate never undercounts (since the last reset); collisions can only add.
public struct FrequencySketch: Sendable {
    public static let rows = 4, maximum: UInt8 = 15
    /// Counters per row (a power of two).
    public let width: Int
    /// Additions between two halvings (`Int.max`: never).
    public let sample: Int
    var counters: [UInt8]
    var additions = 0

    /// A sketch of `width` counters per row (rounded up to a power of two, 16 … 2²²).
    public init(width: Int, sample: Int) {
        self.width = SketchHash.width(width, minimum: 16, maximum: 1 << 22)
        self.sample = Swift.max(1, sample)
        counters = [UInt8](repeating: 0, count: Self.rows * self.width)
    }

    /// Sized as TinyLFU suggests for a cache of about `objects` objects: 8 counters per object
    /// per row, halving every 10 × `objects` additions.
    public init(objects: Int) {
        let n = Swift.max(1, Swift.min(objects, 1 << 24))
        self.init(width: 8 * n, sample: 10 * n)
    }

    /// The estimated count of `id`: the least of its counters.
    public func estimate(_ id: UInt64) -> Int {
        var least = Self.maximum
        for r in 0..<Self.rows { least = Swift.min(least, counters[r * width + SketchHash.slot(id, row: r, mask: width - 1)]) }
        return Int(least)
    }

    /// Counts `id` once more (conservative update: only the counters at the minimum grow), then
    /// halves every counter when `sample` additions have been made since the last halving.
    public mutating func add(_ id: UInt64) {
        let least = UInt8(estimate(id))
        if least < Self.maximum {
            for r in 0..<Self.rows {
                let i = r * width + SketchHash.slot(id, row: r, mask: width - 1)
                if counters[i] == least { counters[i] = least + 1 }
            }
        }
        additions += 1
        if additions >= sample {
            additions = 0
            for i in counters.indices { counters[i] >>= 1 }
        }
    }
}

/// When an id was last seen, approximately, in fixed memory: two rows of timestamps, each id
/// writing its time into one slot per row; the estimate is the earlier of its two slots (a
/// collision can only make an id look more recent than it is, never older). `nil`: not seen
/// (no slot written since creation).
public struct RecencySketch: Sendable {
    public static let rows = 2
    public let width: Int
    var times: [Int64]

    /// `width` slots per row (a power of two, 16 … 2²²).
    public init(width: Int) {
        self.width = SketchHash.width(width, minimum: 16, maximum: 1 << 22)
        times = [Int64](repeating: -1, count: Self.rows * self.width)
    }

    public func lastSeen(_ id: UInt64) -> Int64? {
        var earliest = Int64.max
        for r in 0..<Self.rows { earliest = Swift.min(earliest, times[r * width + SketchHash.slot(id, row: r, mask: width - 1)]) }
        return earliest < 0 ? nil : earliest
    }

    public mutating func record(_ id: UInt64, at time: Int64) {
        for r in 0..<Self.rows { times[r * width + SketchHash.slot(id, row: r, mask: width - 1)] = time }
    }
}
