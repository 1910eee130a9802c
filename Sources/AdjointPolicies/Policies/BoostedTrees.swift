/// Gradient-boosted regression trees for squared error: the learner LRB retrains as it runs
/// (``LRBPolicy``), with LightGBM's algorithm under the parameters LRB gives it (``Options``;
/// training and prediction are the policy's own).
///
/// - **Bins**: each feature's values are cut into at most `bins` (255) bins — one per distinct value
///   when there are that few, at equal-frequency quantiles otherwise; a split sends
///   `x ≤ threshold` left, the threshold being a bin's upper bound.
/// - **Trees**: `trees` (32) rounds from the mean label; each fits the residuals of the rows in the
///   bag (a `baggingFraction` (0.8) sample of the rows, redrawn every `baggingFrequency` (5) rounds)
///   over a `featureFraction` (0.8) sample of the features, drawn per tree. Trees grow leaf-wise:
///   the leaf whose best split gains most is split next, up to `leaves` (32), each side keeping at
///   least `minimumLeafRows` (20) rows; gain `G_L²/n_L + G_R²/n_R − G²/n`, leaf value
///   `−learningRate · G/n` (gradients `prediction − label`, hessians 1). A leaf's histogram is
///   built from its rows for the smaller child and by subtraction for the larger.
///
/// Not LightGBM itself, which LRB links: neither Debian nor a Swift package provides it (Debian's
/// XGBoost grows trees level by level by default and bins differently, so it would be no closer). Bin
/// boundaries, sampling and ties differ from LightGBM's, so models trained on the same rows agree
/// in what they learn, not bit for bit.
public struct BoostedTrees: Sendable {
    public struct Options: Sendable {
        public var trees = 32, leaves = 32, learningRate = 0.1
        public var featureFraction = 0.8, baggingFraction = 0.8, baggingFrequency = 5
        public var minimumLeafRows = 20, bins = 255
        public var seed: UInt64 = 0x4c52_4200
        public init() {}
    }

    /// Nodes of every tree: `feature < 0` marks a leaf holding `value`; otherwise `x[feature] ≤
    /// threshold` goes to `left`, else to the node after it (indices into these arrays).
    var feature: [Int32] = [], threshold: [Float] = [], left: [Int32] = [], value: [Double] = []
    /// The threshold's bin, used while training (predictions on binned rows).
    var thresholdBin: [UInt8] = []
    var roots: [Int32] = []
    /// The mean label: where every tree starts.
    public private(set) var base: Double = 0
    public let featureCount: Int

    public var treeCount: Int { roots.count }
    public var nodeCount: Int { feature.count }

    /// The prediction for one row of `featureCount` values.
    @inline(__always)
    func predict(_ row: UnsafePointer<Float>) -> Double {
        var sum = 0.0
        predict(rows: row, count: 1, into: &sum)
        return sum
    }

    /// Predictions for `count` rows held one after another.
    func predict(rows: UnsafePointer<Float>, count: Int, into out: UnsafeMutablePointer<Double>) {
        feature.withUnsafeBufferPointer { feature in
            threshold.withUnsafeBufferPointer { threshold in
                left.withUnsafeBufferPointer { left in
                    value.withUnsafeBufferPointer { value in
                        for r in 0..<count {
                            let row = rows + r * featureCount
                            var sum = base
                            for root in roots {
                                var node = Int(root)
                                while feature[node] >= 0 {
                                    // (a branch: it predicts better than a select here)
                                    node = row[Int(feature[node])] <= threshold[node] ? Int(left[node]) : Int(left[node]) + 1
                                }
                                sum += value[node]
                            }
                            out[r] = sum
                        }
                    }
                }
            }
        }
    }

    func predict(_ row: [Float]) -> Double {
        precondition(row.count == featureCount, "a row of \(row.count) values for a model of \(featureCount) features")
        return row.withUnsafeBufferPointer { predict($0.baseAddress!) }
    }

    init(featureCount: Int) { self.featureCount = featureCount }

    /// Fits `labels.count` rows held row after row in `rows` (`featureCount` values each).
    static func fit(rows: [Float], featureCount: Int, labels: [Float], options: Options = Options()) -> BoostedTrees {
        let n = labels.count
        precondition(featureCount > 0 && rows.count == n * featureCount, "\(rows.count) values for \(n) rows of \(featureCount) features")
        var model = BoostedTrees(featureCount: featureCount)
        guard n > 0 else { return model }
        model.base = labels.reduce(0.0) { $0 + Double($1) } / Double(n)
        let binning = Binning(rows: rows, featureCount: featureCount, count: n, bins: max(2, min(options.bins, 256)))
        var random = SplitMix64(seed: options.seed)
        var prediction = [Double](repeating: model.base, count: n)
        var gradient = [Double](repeating: 0, count: n)
        var bag = Array(0..<Int32(n))
        let bagSize = max(1, Int((Double(n) * options.baggingFraction).rounded()))
        let featuresPerTree = max(1, Int((Double(featureCount) * options.featureFraction).rounded()))
        var grower = TreeGrower(binning: binning, options: options)
        for round in 0..<options.trees {
            if bagSize < n, round % max(1, options.baggingFrequency) == 0 {
                bag = Array(0..<Int32(n))
                for i in 0..<bagSize { bag.swapAt(i, i + Int(random.next() % UInt64(n - i))) }
                bag.removeLast(n - bagSize)
                bag.sort()
            }
            var features = Array(0..<featureCount)
            for i in 0..<featuresPerTree { features.swapAt(i, i + Int(random.next() % UInt64(featureCount - i))) }
            features.removeLast(featureCount - featuresPerTree)
            features.sort()
            for r in bag { gradient[Int(r)] = prediction[Int(r)] - Double(labels[Int(r)]) }
            grower.grow(into: &model, rows: bag, gradient: gradient, features: features)
            let root = Int(model.roots[model.roots.count - 1])
            for r in 0..<n {
                var node = root
                while model.feature[node] >= 0 {
                    let bin = binning.binned[Int(model.feature[node]) * n + r]
                    node = Int(model.left[node]) + (bin > model.thresholdBin[node] ? 1 : 0)
                }
                prediction[r] += model.value[node]
            }
        }
        return model
    }

    /// The features cut into bins, column after column.
    struct Binning {
        let count: Int, featureCount: Int
        /// Per feature, the bins' upper bounds (the last bin has none).
        var bounds: [[Float]] = []
        var binned: [UInt8]

        init(rows: [Float], featureCount: Int, count: Int, bins: Int) {
            (self.count, self.featureCount) = (count, featureCount)
            binned = [UInt8](repeating: 0, count: count * featureCount)
            var column = [Float](repeating: 0, count: count)
            for f in 0..<featureCount {
                for r in 0..<count { column[r] = rows[r * featureCount + f] }
                column.sort()
                var distinct: [Float] = []
                for v in column where distinct.last != v {
                    distinct.append(v)
                    if distinct.count > bins { break }
                }
                var upper: [Float] = []
                if distinct.count <= bins {
                    upper = Array(distinct.dropLast())
                } else {
                    for b in 1..<bins {
                        let v = column[b * count / bins]
                        if upper.last.map({ v > $0 }) ?? true, v < column[count - 1] { upper.append(v) }
                    }
                }
                bounds.append(upper)
                for r in 0..<count { binned[f * count + r] = UInt8(Self.bin(rows[r * featureCount + f], upper)) }
            }
        }

        /// The first bin whose upper bound is ≥ `x` (the last when none is).
        static func bin(_ x: Float, _ upper: [Float]) -> Int {
            var (lo, hi) = (0, upper.count)
            while lo < hi {
                let mid = (lo + hi) / 2
                if x <= upper[mid] { hi = mid } else { lo = mid + 1 }
            }
            return lo
        }
    }

    /// Grows one tree leaf-wise over histograms (scratch kept between trees).
    struct TreeGrower {
        let binning: Binning, options: Options
        /// Per leaf, per feature, per bin: summed gradients and row counts.
        var sums: [Double], counts: [Int32]
        var order: [Int32] = [], scratch: [Int32] = []
        let stride = 256

        init(binning: Binning, options: Options) {
            (self.binning, self.options) = (binning, options)
            let size = max(2, options.leaves) * binning.featureCount * stride
            sums = [Double](repeating: 0, count: size)
            counts = [Int32](repeating: 0, count: size)
        }

        struct Leaf {
            var node: Int, start: Int, count: Int, gradient: Double
            var gain = 0.0, feature = -1, bin = 0, leftGradient = 0.0, leftCount = 0
        }

        mutating func histogram(leaf slot: Int, _ leaf: Leaf, gradient: [Double], features: [Int]) {
            let n = binning.count, base = slot * binning.featureCount * stride
            for f in features {
                let h = base + f * stride
                for b in 0..<stride { sums[h + b] = 0; counts[h + b] = 0 }
                let column = f * n
                for i in leaf.start..<(leaf.start + leaf.count) {
                    let r = Int(order[i]), b = h + Int(binning.binned[column + r])
                    sums[b] += gradient[r]
                    counts[b] += 1
                }
            }
        }

        mutating func subtract(parent: Int, child: Int, into target: Int, features: [Int]) {
            let width = binning.featureCount * stride
            for f in features {
                for b in 0..<stride {
                    let o = f * stride + b
                    sums[target * width + o] = sums[parent * width + o] - sums[child * width + o]
                    counts[target * width + o] = counts[parent * width + o] - counts[child * width + o]
                }
            }
        }

        func bestSplit(_ leaf: inout Leaf, slot: Int, features: [Int]) {
            let base = slot * binning.featureCount * stride, n = Double(leaf.count), g = leaf.gradient
            let minimum = options.minimumLeafRows
            leaf.gain = 0
            leaf.feature = -1
            guard leaf.count >= 2 * minimum else { return }
            for f in features {
                let bins = binning.bounds[f].count + 1
                var gl = 0.0, nl = 0
                for b in 0..<(bins - 1) {
                    gl += sums[base + f * stride + b]
                    nl += Int(counts[base + f * stride + b])
                    if nl < minimum { continue }
                    if leaf.count - nl < minimum { break }
                    let gr = g - gl, nr = leaf.count - nl
                    let gain = gl * gl / Double(nl) + gr * gr / Double(nr) - g * g / n
                    if gain > leaf.gain {
                        (leaf.gain, leaf.feature, leaf.bin, leaf.leftGradient, leaf.leftCount) = (gain, f, b, gl, nl)
                    }
                }
            }
        }

        mutating func grow(into model: inout BoostedTrees, rows: [Int32], gradient: [Double], features: [Int]) {
            order = rows
            if scratch.count < rows.count { scratch = [Int32](repeating: 0, count: rows.count) }
            model.roots.append(Int32(model.feature.count))
            func addNode(_ m: inout BoostedTrees, value: Double) -> Int {
                m.feature.append(-1); m.threshold.append(0); m.thresholdBin.append(0)
                m.left.append(-1); m.value.append(value)
                return m.feature.count - 1
            }
            let total = rows.reduce(0.0) { $0 + gradient[Int($1)] }
            var leaves = [Leaf(node: addNode(&model, value: 0), start: 0, count: rows.count, gradient: total)]
            histogram(leaf: 0, leaves[0], gradient: gradient, features: features)
            bestSplit(&leaves[0], slot: 0, features: features)
            let n = binning.count
            while leaves.count < options.leaves {
                var chosen = -1
                for (i, leaf) in leaves.enumerated() where leaf.feature >= 0 && (chosen < 0 || leaf.gain > leaves[chosen].gain) { chosen = i }
                guard chosen >= 0 else { break }
                let parent = leaves[chosen]
                // Partition the parent's rows, keeping their order: left (bin ≤ split) first.
                let column = parent.feature * n
                var l = parent.start, r = 0
                for i in parent.start..<(parent.start + parent.count) {
                    let row = order[i]
                    if binning.binned[column + Int(row)] <= UInt8(parent.bin) { order[l] = row; l += 1 } else { scratch[r] = row; r += 1 }
                }
                for i in 0..<r { order[l + i] = scratch[i] }
                let node = parent.node
                model.feature[node] = Int32(parent.feature)
                model.thresholdBin[node] = UInt8(parent.bin)
                model.threshold[node] = binning.bounds[parent.feature][parent.bin]
                let leftNode = addNode(&model, value: 0), rightNode = addNode(&model, value: 0)   // adjacent
                model.left[node] = Int32(leftNode)
                let leftLeaf = Leaf(node: leftNode, start: parent.start, count: parent.leftCount, gradient: parent.leftGradient)
                let rightLeaf = Leaf(node: rightNode, start: parent.start + parent.leftCount, count: parent.count - parent.leftCount,
                                     gradient: parent.gradient - parent.leftGradient)
                // The larger child takes the parent's histogram slot (by subtraction); the smaller
                // gets a new one, built from its rows.
                let leftIsSmaller = leftLeaf.count <= rightLeaf.count
                var smaller = leftIsSmaller ? leftLeaf : rightLeaf, larger = leftIsSmaller ? rightLeaf : leftLeaf
                let newSlot = leaves.count
                histogram(leaf: newSlot, smaller, gradient: gradient, features: features)
                subtract(parent: chosen, child: newSlot, into: chosen, features: features)
                bestSplit(&smaller, slot: newSlot, features: features)
                bestSplit(&larger, slot: chosen, features: features)
                leaves[chosen] = larger
                leaves.append(smaller)
            }
            for leaf in leaves { model.value[leaf.node] = -options.learningRate * leaf.gradient / Double(max(leaf.count, 1)) }
        }
    }
}
