import Foundation

/// LRB, learning relaxed Belady (Song, Berger, Li, Lloyd, NSDI 2020), as libCacheSim runs it:
/// gradient-boosted trees (``BoostedTrees``) predict log(1 + the requests until an object's next
/// request) from its history, and an eviction removes the sampled resident object predicted to
/// return last.
///
/// - **Features** (44, libCacheSim's order): the requests since the object's last request; its
///   last 31 inter-request distances, newest first (0 where fewer); its size; how many of them lie
///   within the memory window; 10 exponentially decayed request counts (EDCs) with half-lives of
///   2¹⁰ … 2¹⁹ requests.
/// - **Training data**: once the cache has evicted, every request labels one random object it
///   knows — resident or remembered — at that moment; the label is log(1 + distance) when the
///   object is requested again, or "beyond" (2 × the memory window, or its age plus the window for
///   an object forced out of the cache) when it is forgotten first. Every `batchSize` (131,072)
///   labelled samples a new model is trained on them alone and replaces the old one.
/// - **Eviction**: until the first model, and whenever the least recently used resident has not
///   been requested for a memory window, the least recently used resident goes (so on traces with
///   fewer labelled samples than a batch LRB *is* LRU). Otherwise `sampleSize` (64) distinct
///   residents are scored and the highest prediction (times the size, libCacheSim's object-miss-
///   ratio objective) is evicted; its history is remembered.
/// - **Memory window** 2²⁶ requests (libCacheSim's): an evicted object's history is forgotten a
///   window after its last request.
///
/// Bounded where libCacheSim is not: at most `historyLimit` (2¹⁹) remembered objects — past it,
/// the one requested longest ago is forgotten early (its samples labelled beyond the window) — and
/// `sampleLimit` (2²¹) pending samples — past it, a request labels nothing. Samples and candidates come from a
/// seeded SplitMix64 stream, the trees from ``BoostedTrees`` rather than LightGBM, so results agree
/// with libCacheSim's up to sampling and training noise. Memory: about 190 bytes per known object,
/// 8 per pending sample, and the batch (44 floats per sample).
public struct LRBPolicy: CachePolicy {
    public struct Options: Sendable {
        public var sampleSize = 64
        public var memoryWindow: UInt32 = 1 << 26
        public var batchSize = 131_072
        public var historyLimit = 1 << 19
        public var sampleLimit = 1 << 21
        public var trees = BoostedTrees.Options()
        public var seed: UInt64 = 0x4c52_4201
        public init() {}
    }

    public var name: String { "LRB" }
    public let capacity: Int64
    public private(set) var occupied: Int64 = 0
    public let options: Options

    static let distances = 31, edcs = 10, baseEDCWindow = 10
    /// Feature columns: age, 31 distances, size, distances within the window, 10 EDCs.
    public static let featureCount = 1 + distances + 1 + 1 + edcs

    // Known objects, by slot (resident or remembered).
    var ids: [UInt64] = [], sizes: [Int64] = [], lastRequest: [UInt32] = []
    /// Inter-request distances: a ring of 31 per slot; `distanceCount` filled, `distanceHead` the next to write.
    var distanceRing: [UInt32] = [], distanceCount: [UInt8] = [], distanceHead: [UInt8] = []
    /// EDCs as of the last request (0 until the object's second request).
    var edc: [Float] = []
    /// Where the slot sits: `resident` or `remembered` position (≥ 0 resident, < 0 remembered: ~position).
    var position: [Int32] = []
    /// Recency list of residents (least recent at `lruTail`).
    var newer: [Int32] = [], older: [Int32] = []
    var lruHead: Int32 = -1, lruTail: Int32 = -1
    /// Pending samples: a linked list per slot.
    var sampleHead: [Int32] = []
    var freeSlots: [Int32] = []
    var index: [UInt64: Int32] = [:]
    var residents: [Int32] = [], remembered: [Int32] = []
    /// Remembered objects by last request, oldest first; an entry is stale once its slot is no
    /// longer remembered with that last request (lazy deletion; rebuilt when stale ones dominate).
    struct Remembered: HeapOrdered {
        var lastRequest: UInt32, slot: Int32
        static func precedes(_ a: Remembered, _ b: Remembered) -> Bool { a.lastRequest < b.lastRequest }
    }
    var rememberedOrder = BinaryHeap<Remembered>()

    var sampleTime: [UInt32] = [], sampleNext: [Int32] = []
    var freeSample: Int32 = -1
    var pendingSamples = 0
    var maturing: [UInt32] = []

    var time: UInt32 = 0
    var sampling = false
    var random: SplitMix64
    /// The batch being collected: rows of `featureCount` values and their labels.
    var rows: [Float] = [], labels: [Float] = []
    public private(set) var model: BoostedTrees?
    /// How many models were trained, objects forgotten early (past the history limit) and requests
    /// that labelled nothing (past the sample limit).
    public private(set) var trainings = 0, earlyForgets = 0, skippedSamples = 0
    /// Scratch for an eviction's candidates.
    var candidateRows: [Float] = [], candidates: [Int32] = [], scores: [Double] = [], sampledMark: [UInt32] = [], evictions: UInt32 = 0
    /// 0.5^i for the EDCs' decay (i up to the memory window over the first EDC window).
    let decay: [Double]

    /// LRB with libCacheSim's parameters.
    public init(capacity: Int64) {
        self.init(capacity: capacity, checked: Options())
    }

    /// LRB with other parameters; out-of-range ones are a ``CacheTrainingError/invalidOptions(_:)``
    /// naming the field and its range.
    public init(capacity: Int64, options: Options) throws {
        func check(_ ok: Bool, _ what: String) throws { if !ok { throw CacheTrainingError.invalidOptions("LRB " + what) } }
        try check((1 ... 4096).contains(options.sampleSize), "sampleSize \(options.sampleSize) outside 1 ... 4096")
        try check((20 ... 1 << 24).contains(options.batchSize), "batchSize \(options.batchSize) outside 20 ... 2^24")
        try check((1 ... 1 << 26).contains(options.historyLimit), "historyLimit \(options.historyLimit) outside 1 ... 2^26")
        try check((1 ... 1 << 28).contains(options.sampleLimit), "sampleLimit \(options.sampleLimit) outside 1 ... 2^28")
        try check(options.memoryWindow >= 1 << Self.baseEDCWindow && options.memoryWindow <= 1 << 30,
                  "memoryWindow \(options.memoryWindow) outside 2^\(Self.baseEDCWindow) ... 2^30")
        let t = options.trees
        try check((1 ... 1000).contains(t.trees) && (2 ... 256).contains(t.leaves) && (2 ... 256).contains(t.bins) && t.minimumLeafRows >= 1
                  && t.baggingFrequency >= 1, "trees \(t.trees) (1 ... 1000), leaves \(t.leaves) (2 ... 256), bins \(t.bins) (2 ... 256), "
                  + "minimumLeafRows \(t.minimumLeafRows) (≥ 1), baggingFrequency \(t.baggingFrequency) (≥ 1) out of range")
        try check(t.learningRate.isFinite && t.learningRate > 0 && (0 ... 1).contains(t.featureFraction) && t.featureFraction > 0
                  && (0 ... 1).contains(t.baggingFraction) && t.baggingFraction > 0,
                  "learningRate \(t.learningRate) (> 0), featureFraction \(t.featureFraction), baggingFraction \(t.baggingFraction) ((0, 1]) out of range")
        self.init(capacity: capacity, checked: options)
    }

    init(capacity: Int64, checked options: Options) {
        self.capacity = capacity
        self.options = options
        random = SplitMix64(seed: options.seed)
        let steps = Int(options.memoryWindow >> UInt32(Self.baseEDCWindow))
        decay = (0..<min(steps, 1100)).map { Foundation.pow(0.5, Double($0)) }
        candidateRows = [Float](repeating: 0, count: options.sampleSize * Self.featureCount)
        candidates = [Int32](repeating: 0, count: options.sampleSize)
        scores = [Double](repeating: 0, count: options.sampleSize)
    }

    /// 0.5^⌊distance / 2^(10+k)⌋.
    @inline(__always)
    func decayFactor(_ distance: UInt32, _ k: Int) -> Double {
        let step = Int(distance >> UInt32(Self.baseEDCWindow + k))
        return step < decay.count ? decay[step] : 0
    }

    // MARK: the policy

    public mutating func find(_ request: CacheRequest) -> Bool {
        time &+= 1
        forgetExpired()
        var hit = false
        if let slot = index[request.id].map(Int.init) {
            matureSamples(slot, distance: nil)
            recordRequest(slot)
            if position[slot] >= 0 {
                hit = true
                occupied += request.size - sizes[slot]
                sizes[slot] = request.size
                unlink(slot)
                pushFront(slot)
            }
        }
        if sampling { sample() }
        return hit
    }

    public mutating func insert(_ request: CacheRequest) {
        let slot: Int
        if let known = index[request.id].map(Int.init) {
            slot = known
            removeRemembered(slot)
        } else {
            slot = allocate(request.id)
            lastRequest[slot] = time
        }
        sizes[slot] = request.size
        position[slot] = Int32(residents.count)
        residents.append(Int32(slot))
        pushFront(slot)
        occupied += request.size
    }

    public mutating func evict(_ request: CacheRequest) {
        guard lruTail >= 0 else { return }
        sampling = true
        let victim = chooseVictim()
        let forced = time &- lastRequest[victim] >= options.memoryWindow
        unlink(victim)
        removeResident(victim)
        occupied -= sizes[victim]
        if forced {
            matureSamples(victim, distance: UInt64(time &- lastRequest[victim]) + UInt64(options.memoryWindow))
            release(victim)
        } else {
            position[victim] = ~Int32(remembered.count)
            remembered.append(Int32(victim))
            pushRemembered(victim)
            if remembered.count > options.historyLimit { forgetOldest() }
        }
    }

    // MARK: eviction

    mutating func chooseVictim() -> Int {
        let tail = Int(lruTail)
        guard let model, time &- lastRequest[tail] < options.memoryWindow else { return tail }
        let n = residents.count, k = options.sampleSize, f = Self.featureCount
        if sampledMark.count < ids.count { sampledMark += [UInt32](repeating: 0, count: ids.count - sampledMark.count) }
        evictions &+= 1
        if evictions == 0 { for i in sampledMark.indices { sampledMark[i] = 0 }; evictions = 1 }
        var trials = 0
        var chosen = 0
        while chosen < k {
            trials += 1
            let slot = Int(residents[Int(random.next() % UInt64(n))])
            if sampledMark[slot] == evictions, trials < 200 { continue }   // libCacheSim's rule: distinct, up to 200 draws
            sampledMark[slot] = evictions
            candidates[chosen] = Int32(slot)
            chosen += 1
        }
        var scratch: [Float] = []
        swap(&scratch, &candidateRows)   // (moved out, not copied: written while self is read)
        scratch.withUnsafeMutableBufferPointer { rowsBuffer in
            for c in 0..<k { writeFeatures(Int(candidates[c]), at: time, into: rowsBuffer.baseAddress! + c * f) }
            scores.withUnsafeMutableBufferPointer { model.predict(rows: UnsafePointer(rowsBuffer.baseAddress!), count: k, into: $0.baseAddress!) }
        }
        swap(&scratch, &candidateRows)
        var best = 0, bestScore = -Double.infinity
        for c in 0..<k {
            let score = scores[c] * Double(sizes[Int(candidates[c])])
            if score > bestScore { (best, bestScore) = (c, score) }
        }
        return Int(candidates[best])
    }

    /// The feature row of `slot` as it stood at request time `at` (the object not requested since
    /// its last request).
    func writeFeatures(_ slot: Int, at t: UInt32, into row: UnsafeMutablePointer<Float>) {
        let age = t &- lastRequest[slot]
        row[0] = Float(age)
        let count = Int(distanceCount[slot]), head = Int(distanceHead[slot]), ring = slot * Self.distances
        var cumulative: UInt64 = 0, within = 0
        for j in 0..<Self.distances {
            if j < count {
                let d = distanceRing[ring + (head - 1 - j + 2 * Self.distances) % Self.distances]
                row[1 + j] = Float(d)
                cumulative += UInt64(d)
                if cumulative < UInt64(options.memoryWindow) { within += 1 }
            } else {
                row[1 + j] = 0
            }
        }
        row[1 + Self.distances] = Float(sizes[slot])
        row[2 + Self.distances] = Float(within)
        for k in 0..<Self.edcs {
            let factor = decayFactor(age, k)
            row[3 + Self.distances + k] = Float(count > 0 ? Double(edc[slot * Self.edcs + k]) * factor : factor)
        }
    }

    // MARK: histories and samples

    /// A request of a known object: its distance and EDCs.
    mutating func recordRequest(_ slot: Int) {
        let distance = time &- lastRequest[slot]
        let ring = slot * Self.distances, head = Int(distanceHead[slot])
        distanceRing[ring + head] = distance
        distanceHead[slot] = UInt8((head + 1) % Self.distances)
        let first = distanceCount[slot] == 0
        if Int(distanceCount[slot]) < Self.distances { distanceCount[slot] += 1 }
        for k in 0..<Self.edcs {
            let e = slot * Self.edcs + k
            edc[e] = first ? Float(decayFactor(distance, k) + 1) : Float(Double(edc[e]) * decayFactor(distance, k) + 1)
        }
        lastRequest[slot] = time
        if position[slot] < 0 { pushRemembered(slot) }
    }

    /// Labels one random known object at this request.
    mutating func sample() {
        let total = residents.count + remembered.count
        guard total > 0 else { return }
        guard pendingSamples < options.sampleLimit else {
            skippedSamples += 1
            return
        }
        let pick = Int(random.next() % UInt64(total))
        let slot = Int(pick < residents.count ? residents[pick] : remembered[pick - residents.count])
        let s: Int32
        if freeSample >= 0 {
            s = freeSample
            freeSample = sampleNext[Int(s)]
        } else {
            s = Int32(sampleTime.count)
            sampleTime.append(0)
            sampleNext.append(-1)
        }
        sampleTime[Int(s)] = time
        sampleNext[Int(s)] = sampleHead[slot]
        sampleHead[slot] = s
        pendingSamples += 1
    }

    /// Turns `slot`'s pending samples into training rows: labelled with the distance to this
    /// request, or with `distance` (beyond the window) when given.
    mutating func matureSamples(_ slot: Int, distance: UInt64?) {
        var s = sampleHead[slot]
        guard s >= 0 else { return }
        let f = Self.featureCount
        // Oldest first, as libCacheSim's vector holds them.
        var times: [UInt32] = []
        swap(&times, &maturing)
        times.removeAll(keepingCapacity: true)
        while s >= 0 {
            times.append(sampleTime[Int(s)])
            let next = sampleNext[Int(s)]
            sampleNext[Int(s)] = freeSample
            freeSample = s
            pendingSamples -= 1
            s = next
        }
        sampleHead[slot] = -1
        for t in times.reversed() {
            var batch: [Float] = []
            swap(&batch, &rows)
            let start = batch.count
            batch += repeatElement(0, count: f)
            batch.withUnsafeMutableBufferPointer { writeFeatures(slot, at: t, into: $0.baseAddress! + start) }
            swap(&batch, &rows)
            labels.append(Float(Foundation.log1p(Double(distance ?? UInt64(time &- t)))))
            if labels.count >= options.batchSize { train() }
        }
        swap(&times, &maturing)
    }

    mutating func train() {
        var trees = options.trees
        trees.seed = options.trees.seed &+ UInt64(trainings)
        model = BoostedTrees.fit(rows: rows, featureCount: Self.featureCount, labels: labels, options: trees)
        trainings += 1
        rows.removeAll(keepingCapacity: true)
        labels.removeAll(keepingCapacity: true)
    }

    mutating func pushRemembered(_ slot: Int) {
        rememberedOrder.push(Remembered(lastRequest: lastRequest[slot], slot: Int32(slot)))
        if rememberedOrder.count > 2 * remembered.count + 64 {
            rememberedOrder = BinaryHeap(heapifying: remembered.map { Remembered(lastRequest: lastRequest[Int($0)], slot: $0) })
        }
    }

    /// The remembered object requested longest ago (stale entries dropped on the way).
    mutating func oldestRemembered() -> Int? {
        while let top = rememberedOrder.first {
            let slot = Int(top.slot)
            if position[slot] < 0, lastRequest[slot] == top.lastRequest { return slot }
            rememberedOrder.pop()
        }
        return nil
    }

    /// Forgets remembered objects last requested a memory window ago.
    mutating func forgetExpired() {
        guard time >= options.memoryWindow, let slot = oldestRemembered(), time &- lastRequest[slot] >= options.memoryWindow else { return }
        forget(slot)
    }

    /// Forgets the remembered object requested longest ago (past the history limit).
    mutating func forgetOldest() {
        guard let slot = oldestRemembered() else { return }
        earlyForgets += 1
        forget(slot)
    }

    mutating func forget(_ slot: Int) {
        matureSamples(slot, distance: 2 * UInt64(options.memoryWindow))
        removeRemembered(slot)
        release(slot)
    }

    // MARK: slots and lists

    mutating func allocate(_ id: UInt64) -> Int {
        let slot: Int
        if let free = freeSlots.popLast() {
            slot = Int(free)
            ids[slot] = id
        } else {
            slot = ids.count
            ids.append(id); sizes.append(0); lastRequest.append(0); position.append(0)
            newer.append(-1); older.append(-1); sampleHead.append(-1)
            distanceCount.append(0); distanceHead.append(0)
            distanceRing += repeatElement(0, count: Self.distances)
            edc += repeatElement(0, count: Self.edcs)
        }
        distanceCount[slot] = 0
        distanceHead[slot] = 0
        sampleHead[slot] = -1
        index[id] = Int32(slot)
        return slot
    }

    mutating func release(_ slot: Int) {
        index[ids[slot]] = nil
        position[slot] = .max   // neither resident nor remembered: its heap entries are stale
        freeSlots.append(Int32(slot))
    }

    mutating func removeResident(_ slot: Int) {
        let p = Int(position[slot]), last = residents.removeLast()
        if Int(last) != slot {
            residents[p] = last
            position[Int(last)] = Int32(p)
        }
    }

    mutating func removeRemembered(_ slot: Int) {
        let p = Int(~position[slot]), last = remembered.removeLast()
        if Int(last) != slot {
            remembered[p] = last
            position[Int(last)] = ~Int32(p)
        }
    }

    mutating func pushFront(_ slot: Int) {
        older[slot] = lruHead
        newer[slot] = -1
        if lruHead >= 0 { newer[Int(lruHead)] = Int32(slot) } else { lruTail = Int32(slot) }
        lruHead = Int32(slot)
    }

    mutating func unlink(_ slot: Int) {
        let (n, o) = (newer[slot], older[slot])
        if n >= 0 { older[Int(n)] = o } else { lruHead = o }
        if o >= 0 { newer[Int(o)] = n } else { lruTail = n }
    }
}
