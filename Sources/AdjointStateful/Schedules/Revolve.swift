/// Binomial checkpointing (Griewank & Walther, "Algorithm 799: Revolve", ACM TOMS 26(1), 2000).
///
/// With `s` snapshots (the one of the start state included), reversing `l` steps needs at least
/// `t(l, s) = r·l − β(s+1, r−1)` forward steps besides the `l` recorded ones, where
/// `β(s, r) = C(s+r, s)` and the *repetition number* `r` is the least integer with `β(s, r) ≥ l`
/// (no step is run more than `r + 1` times). `reverse(from:to:snapshots:_:)` attains it.
public enum Revolve {
    /// `β(s, r) = C(s + r, s)`, saturating at `Int.max`.
    public static func beta(_ s: Int, _ r: Int) -> Int {
        guard s >= 0, r >= 0 else { return 0 }
        let k = min(s, r)
        guard k > 0 else { return 1 }
        let (n, nOverflow) = s.addingReportingOverflow(r)
        if nOverflow { return Int.max }
        var value = 1
        for i in 0..<k {
            // value · (n − i) / (i + 1) stays an integer at every step.
            let (product, overflow) = value.multipliedReportingOverflow(by: n - i)
            if overflow { return Int.max }
            value = product / (i + 1)
        }
        return value
    }

    /// The least `r` with `β(s, r) ≥ steps` (0 when `steps ≤ 1`).
    public static func repetitionNumber(steps: Int, snapshots: Int) -> Int {
        // More snapshots than steps act as `steps` of them (β(s, 1) = s + 1 ≥ steps either way).
        let s = max(1, min(snapshots, steps))
        var r = 0
        var b = 1  // β(s, 0)
        while b < steps {
            // β(s, r+1) = β(s, r) · (s + r + 1) / (r + 1)
            let (product, overflow) = b.multipliedReportingOverflow(by: s + r + 1)
            b = overflow ? Int.max : product / (r + 1)
            r += 1
        }
        return r
    }

    /// `t(steps, s)`: the forward steps Revolve runs besides the recorded ones.
    public static func forwardSteps(steps: Int, snapshots s: Int) -> Int {
        let r = repetitionNumber(steps: steps, snapshots: s)
        let (product, overflow) = r.multipliedReportingOverflow(by: steps)
        return overflow ? Int.max : product - beta(min(s, steps) + 1, r - 1)
    }

    /// How far to advance from the start of `l` steps with `s` snapshots: any `m` in
    /// `[max(l − β(s−1, r), β(s, r−2)), min(β(s, r−1), l − β(s−1, r−1))]` is optimal; the lower end
    /// is taken.
    static func split(_ l: Int, _ snapshots: Int) -> Int {
        let s = min(snapshots, l)
        let r = repetitionNumber(steps: l, snapshots: s)
        return max(1, l - beta(s - 1, r), beta(s, r - 2))
    }

    /// Emits the actions that reverse steps `a..<b` given a stored snapshot of `s[a]` (counted in
    /// `snapshots`), which is freed at the end. Iterative, so the depth of Swift's stack does not
    /// grow with the horizon.
    static func reverse(from a: Int, to b: Int, snapshots: Int, _ emit: (CheckpointAction) throws -> Void) throws {
        var frames = [(a: a, b: b, s: snapshots)]
        frames.reserveCapacity(Swift.min(snapshots, b - a) + 1)   // the deepest the stack goes
        while let frame = frames.last {
            let l = frame.b - frame.a
            try emit(.restore(frame.a))
            if l == 1 {
                try emit(.record(frame.a))
                try emit(.pullback(frame.a))
                try emit(.free(frame.a))
                frames.removeLast()
                continue
            }
            let m = split(l, frame.s)
            let mid = frame.a + m
            try emit(.advance(to: mid))
            frames[frames.count - 1].b = mid
            if frame.b - mid == 1 {
                try emit(.record(mid))
                try emit(.pullback(mid))
            } else {
                try emit(.store(mid))
                frames.append((mid, frame.b, frame.s - 1))
            }
        }
    }
}
