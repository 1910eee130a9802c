/// An index table of frame element offsets (`-1`: zero, or a gather's pad) written as the rule that
/// generates it: entry `k` is `before` for `k < lo`, `after` for `k ≥ hi`, and `first + stride·(k − lo)`
/// in between (`stride` 0 or 1). A slice, a shift, a one-dimensional pad or concatenation with a
/// constant, a broadcast of one element: what a compiled program's large operands read, in six
/// numbers instead of one per element (``FrameInstruction/compact``).
package struct AffineTable: Equatable, Sendable {
    package var lo: Int, hi: Int, first: Int, stride: Int
    package var before = -1, after = -1

    /// The numbers a compact table takes in a program's table array.
    package static let width = 6

    package init(lo: Int, hi: Int, first: Int, stride: Int, before: Int = -1, after: Int = -1) {
        (self.lo, self.hi, self.first, self.stride, self.before, self.after) = (lo, hi, first, stride, before, after)
    }

    /// The table stored at `p` (``width`` numbers, as ``encoded`` writes them).
    @inline(__always)
    package init(_ p: UnsafePointer<Int>) {
        (lo, hi, first, stride, before, after) = (p[0], p[1], p[2], p[3], p[4], p[5])
    }

    package init(_ numbers: ArraySlice<Int>) {
        let s = numbers.startIndex
        (lo, hi, first, stride, before, after) = (numbers[s], numbers[s + 1], numbers[s + 2], numbers[s + 3], numbers[s + 4], numbers[s + 5])
    }

    package var encoded: [Int] { [lo, hi, first, stride, before, after] }

    /// Entry `k`.
    @inline(__always)
    package func entry(_ k: Int) -> Int { k < lo ? before : k < hi ? first + stride * (k - lo) : after }

    /// Entries `start ..< start + count` into `out`.
    @inline(__always)
    package func fill(_ out: UnsafeMutablePointer<Int>, from start: Int, count: Int) {
        for j in 0..<count { out[j] = entry(start + j) }
    }

    /// The smallest and largest offsets read (nil: none).
    package func readRange(count n: Int) -> ClosedRange<Int>? {
        var values: [Int] = []
        if lo > 0, before >= 0 { values.append(before) }
        if hi < n, after >= 0 { values.append(after) }
        if hi > lo { values += [first, first + stride * (hi - lo - 1)] }
        guard let low = values.min(), let high = values.max() else { return nil }
        return low...high
    }

    /// The table `t` (of `t.count` entries) as such a rule, or nil when it is not one.
    package static func detect(_ t: ArraySlice<Int>) -> AffineTable? {
        let n = t.count, start = t.startIndex
        guard n > 0 else { return nil }
        func entry(_ k: Int) -> Int { t[start + k] }
        // The run may start at 0, after the first entry, or after the leading repeats of it; and
        // end at n, before the last entry, or before its trailing repeats.
        let leading = t.firstIndex { $0 != t[start] }.map { $0 - start } ?? n
        let trailing = t.lastIndex { $0 != t[start + n - 1] }.map { n - 1 - ($0 - start) } ?? n
        for lo in Set([0, 1, leading]).sorted() where lo <= n {
            for hi in Set([n, n - 1, n - trailing]).sorted(by: >) where hi >= lo {
                let first = hi > lo ? entry(lo) : 0
                let stride = hi - lo >= 2 ? entry(lo + 1) - first : 1
                guard hi == lo || (first >= 0 && (stride == 0 || stride == 1)) else { continue }
                guard (0..<lo).allSatisfy({ entry($0) == entry(0) }), (hi..<n).allSatisfy({ entry($0) == entry(n - 1) }),
                      (lo..<hi).allSatisfy({ entry($0) == first + stride * ($0 - lo) }) else { continue }
                return AffineTable(lo: lo, hi: hi, first: first, stride: stride, before: lo > 0 ? entry(0) : -1, after: hi < n ? entry(n - 1) : -1)
            }
        }
        return nil
    }
}
