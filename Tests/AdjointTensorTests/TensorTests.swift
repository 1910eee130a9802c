import Adjoint
import AdjointTestSupport
import Testing

@Suite("Tensor: creation, dtypes, storage")
struct TensorTests {
    @Test("creation functions produce the documented values")
    func creation() throws {
        #expect(try Tensor.zeros([2, 3]).doubles == [0, 0, 0, 0, 0, 0])
        #expect(try Tensor.ones([2], dtype: .float32).scalars(as: Float.self) == [1, 1])
        #expect(try Tensor.full([2, 2], 7, dtype: .int32).scalars(as: Int32.self) == [7, 7, 7, 7])
        #expect(try Tensor.arange(0, 5).doubles == [0, 1, 2, 3, 4])
        #expect(try Tensor.arange(1, 2, step: 0.25).doubles == [1, 1.25, 1.5, 1.75])
        #expect(try Tensor.arange(5, 0, step: -2, dtype: .int64).scalars(as: Int64.self) == [5, 3, 1])
        #expect(try Tensor.linspace(0, 1, count: 5).doubles == [0, 0.25, 0.5, 0.75, 1])
        let x = try Tensor([1.0, 2, 3, 4, 5, 6], shape: [2, 3])
        #expect(x.shape == [2, 3] && x.dtype == .float64 && x.rank == 2 && x.elementCount == 6)
        #expect(Tensor(Float(2.5)).shape == [] && Tensor(Float(2.5)).dtype == .float32)
        #expect(Tensor([true, false]).dtype == .bool)
        #expect(x.device == .cpu)
    }

    @Test("bad creation arguments are typed errors")
    func creationErrors() {
        #expect(throws: TensorError.self) { try Tensor([1.0, 2, 3], shape: [2, 2]) }
        #expect(throws: TensorError.self) { try Tensor.zeros([2, -1]) }
        #expect(throws: TensorError.self) { try Tensor.full([2], 1.5, dtype: .int32) }
        #expect(throws: TensorError.self) { try Tensor.arange(0, 1, step: 0) }
        #expect(throws: TensorError.self) { try Tensor.uniform([2], key: RandomKey(seed: 1), dtype: .int32) }
        #expect(throws: TensorError.self) { try Tensor.normal([2], key: RandomKey(seed: 1), std: -1) }
    }

    @Test("f16 and bf16 store values with round-to-nearest-even conversion")
    func lowPrecisionStorage() throws {
        let x = try Tensor([1.0, 0.1, 65504, 1e-8, -3.140625, 70000], shape: [6], ).cast(to: .float32)
        let h = try x.cast(to: .float16)
        #expect(h.dtype == .float16 && h.storage.capacity >= 12)
        let back = try h.cast(to: .float32).doubles
        #expect(back[0] == 1 && back[2] == 65504 && back[4] == -3.140625)
        #expect(Swift.abs(back[1] - 0.1) < 1e-4)
        #expect(back[5].isInfinite)   // beyond f16's range
        let b = try x.cast(to: .bfloat16).cast(to: .float32).doubles
        #expect(b[0] == 1 && b[4] == -3.140625 && b[5] == 70144)  // 8 significant bits
        // Ties round to even: 1 + 2^-8 is halfway between 1 and 1 + 2^-7 in bf16.
        #expect(BFloat16(Float(1 + 0x1p-8)).float == 1)
        #expect(BFloat16(Float(1 + 3 * 0x1p-8)).float == 1 + 0x1p-6)
        #expect(BFloat16(Float.nan).float.isNaN)
    }

    @Test("casts between integer, bool and float types; invalid values are errors")
    func casts() throws {
        let x = t([-2.7, 0, 3.9])
        #expect(try x.cast(to: .int32).scalars(as: Int32.self) == [-2, 0, 3])
        #expect(try x.cast(to: .bool).scalars(as: Bool.self) == [true, false, true])
        #expect(try Tensor([Int64(5), -1]).cast(to: .float32).doubles == [5, -1])
        #expect(throws: TensorError.self) { try t([Double.nan]).cast(to: .int64) }
        #expect(throws: TensorError.self) { try t([1e10]).cast(to: .int32) }
        #expect(throws: TensorError.self) { try Tensor([Int64(1) << 40]).cast(to: .int32) }
        // Reading values out as integers saturates instead of trapping.
        #expect(t([Double.nan, 1e20, -1e20, -2.5]).scalars(as: Int32.self) == [0, .max, .min, -2])
        #expect(t([Double.nan, 1e20, -1e20]).scalars(as: Int64.self) == [0, .max, .min])
    }

    @Test("storage is 64-byte aligned and pooled; the pool counts live bytes, peak bytes and allocations")
    func pool() throws {
        let x = try Tensor.zeros([1000])
        #expect(Int(bitPattern: x.storage.pointer) % 64 == 0)
        // A private pool, so tests running in parallel do not disturb the counts.
        let pool = StoragePool()
        let a = pool.allocate(byteCount: 32768)
        #expect(Int(bitPattern: a.pointer) % StoragePool.alignment == 0 && a.capacity == 32768)
        let b = pool.allocate(byteCount: 100)
        #expect(pool.statistics == .init(liveBytes: 32768 + 128, peakBytes: 32768 + 128, allocationCount: 2,
                                         systemAllocationCount: 2, cachedBytes: 0))
        pool.deallocate(a.pointer, capacity: a.capacity)
        #expect(pool.statistics.liveBytes == 128 && pool.statistics.peakBytes == 32768 + 128 && pool.statistics.cachedBytes == 32768)
        // The same size class is served from the free list, not the system.
        let c = pool.allocate(byteCount: 30000)
        #expect(c.pointer == a.pointer && pool.statistics.systemAllocationCount == 2 && pool.statistics.allocationCount == 3)
        pool.deallocate(c.pointer, capacity: c.capacity)
        pool.deallocate(b.pointer, capacity: b.capacity)
        pool.resetPeak()
        #expect(pool.statistics.liveBytes == 0 && pool.statistics.peakBytes == 0)
        pool.trim()
        #expect(pool.statistics.cachedBytes == 0)
        // Several free blocks of one class come back last-freed first, each once; then the system.
        let blocks = (0..<3).map { _ in pool.allocate(byteCount: 200) }
        for block in blocks { pool.deallocate(block.pointer, capacity: block.capacity) }
        let system = pool.statistics.systemAllocationCount
        let again = (0..<3).map { _ in pool.allocate(byteCount: 256).pointer }
        #expect(again == blocks.reversed().map(\.pointer) && pool.statistics.systemAllocationCount == system)
        let fresh = pool.allocate(byteCount: 256)
        #expect(pool.statistics.systemAllocationCount == system + 1 && !again.contains(fresh.pointer))
        for p in again + [fresh.pointer] { pool.deallocate(p, capacity: 256) }
        #expect(pool.statistics.cachedBytes == 4 * 256)
        pool.trim()
        #expect(pool.statistics.cachedBytes == 0 && pool.statistics.liveBytes == 0)
        #expect(StoragePool.capacity(for: 1) == 64)
        #expect(StoragePool.capacity(for: 5000) == 5120)
        // Tensors release their storage to the shared pool when the last value goes away.
        let live = StoragePool.shared.statistics.allocationCount
        _ = try Tensor.zeros([10])
        #expect(StoragePool.shared.statistics.allocationCount > live)
    }

    @Test("copies are independent: copy-on-write on in-place writes")
    func copyOnWrite() throws {
        let a = t([1, 2, 3])
        var b = a
        try b.add_(t([10, 10, 10]))
        #expect(a.doubles == [1, 2, 3])
        #expect(b.doubles == [11, 12, 13])
        #expect(!a.sharesStorage(with: b))
        // A uniquely held tensor is written in place (its elements stay where they were; a copy
        // would be allocated while the old block is still held, so at another address).
        var c = t([1, 2, 3])
        let elements = c.rawPointer
        try c.mul_(t([2]))
        #expect(c.rawPointer == elements && c.doubles == [2, 4, 6])
        // Holding the storage object is sharing it: the write copies.
        var d = t([1, 2, 3])
        let held = d.storage
        try d.mul_(t([2]))
        #expect(d.storage !== held && held.typed(Double.self)[1] == 2 && d.doubles == [2, 4, 6])
        // w += a·b in one pass is bitwise w + a * b: scalar factor either side, full operands.
        let w = try Tensor.uniform([3, 70_000], key: RandomKey(seed: 4), low: -1, high: 1, dtype: .float32)
        let g = try Tensor.uniform([3, 70_000], key: RandomKey(seed: 5), low: -1, high: 1, dtype: .float32)
        let lr = try g.scalarLike(-0.013)
        for (a, b) in [(g, lr), (lr, g), (g, g)] {
            var updated = w
            try updated.multiplyAdd_(a, b)
            #expect(bitwiseEqual(updated, try w + a * b) && w.doubles.first != updated.doubles.first)
        }
        // Views share storage until written.
        let m = t([1, 2, 3, 4, 5, 6], [3, 2])
        var row = try m[1..<2]
        #expect(row.sharesStorage(with: m))
        try row.assign(t([9, 9], [1, 2]), at: [0..<1])
        #expect(m.doubles == [1, 2, 3, 4, 5, 6] && row.doubles == [9, 9])
    }

    @Test("description shows dtype, shape and values")
    func description() throws {
        #expect(t([1, 2, 3, 4], [2, 2]).description == "f64[2,2] [[1.0, 2.0], [3.0, 4.0]]")
        #expect(Tensor([Int32(3)]).description == "i32[1] [3]")
    }
}

@Suite("Philox4x32-10 and random tensors")
struct RandomTests {
    @Test("known-answer vectors from Random123")
    func knownAnswers() {
        func check(_ c: Philox4x32.Counter, _ k: Philox4x32.Key, _ e: Philox4x32.Counter) {
            let r = Philox4x32.block(c, k)
            #expect(r.0 == e.0 && r.1 == e.1 && r.2 == e.2 && r.3 == e.3)
        }
        check((0, 0, 0, 0), (0, 0), (0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8))
        check((0xffff_ffff, 0xffff_ffff, 0xffff_ffff, 0xffff_ffff), (0xffff_ffff, 0xffff_ffff),
              (0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd))
        check((0x243f_6a88, 0x85a3_08d3, 0x1319_8a2e, 0x0370_7344), (0xa409_3822, 0x299f_31d0),
              (0xd16c_fe09, 0x94fd_cceb, 0x5001_e420, 0x2412_6ea1))
    }

    @Test("random tensors are a pure function of key and counter")
    func reproducible() throws {
        let key = RandomKey(seed: 42, stream: 3)
        let a = try Tensor.uniform([1000], key: key)
        let b = try Tensor.uniform([1000], key: key)
        #expect(bitwiseEqual(a, b))
        #expect(!bitwiseEqual(a, try Tensor.uniform([1000], key: key.fold(in: 1))))
        // Element i does not depend on the tensor's size: a prefix of a longer draw is the same.
        let long = try Tensor.uniform([2000], key: key)
        #expect(Array(long.doubles.prefix(1000)) == a.doubles)
        // The counter offset continues the stream: f64 uses two values per Philox block.
        let shifted = try Tensor.uniform([998], key: key, counter: 1)
        #expect(Array(a.doubles.dropFirst(2)) == shifted.doubles)
    }

    @Test("uniform and normal moments")
    func moments() throws {
        let n = 200_000
        let u = try Tensor.uniform([n], key: RandomKey(seed: 7), low: -1, high: 3, dtype: .float32).doubles
        #expect(u.allSatisfy { $0 >= -1 && $0 < 3 })
        let mean = u.reduce(0, +) / Double(n)
        #expect(Swift.abs(mean - 1) < 0.02)
        let z = try Tensor.normal([n], key: RandomKey(seed: 8), mean: 2, std: 0.5).doubles
        let zm = z.reduce(0, +) / Double(n)
        let zv = z.map { ($0 - zm) * ($0 - zm) }.reduce(0, +) / Double(n)
        #expect(Swift.abs(zm - 2) < 0.01 && Swift.abs(zv - 0.25) < 0.01)
    }
}
