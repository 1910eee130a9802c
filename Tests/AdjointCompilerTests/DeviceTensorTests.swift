import Adjoint
@testable import AdjointCompiler
import AdjointIR
import Foundation
import Testing

/// Tensors on a device, with the host emulation of the CUDA kernels installed as device
/// `cuda:9` (`DeviceRuntime.install`): operators run where their operands are, through the same
/// generated kernels a GPU runs, and give the CPU's results.
@Suite("Device tensors, on the host emulation of the CUDA kernels")
struct DeviceTensorTests {
    static let device = Device.cuda(9)
    /// The emulated device, installed once for the test process.
    static let tensors: Result<DeviceTensors, any Error> = Result {
        DeviceRuntime.install(DeviceMemoryPool(device: try HostKernelEmulator()), as: device)
    }

    static func uniform(_ shape: [Int], _ seed: UInt64, _ dtype: DType = .float64) throws -> Tensor {
        try Tensor.uniform(shape, key: RandomKey(seed: seed), low: -1, high: 1, dtype: dtype)
    }

    static func bits(_ t: Tensor) -> [UInt64] { DeviceProgramTests.bits(t) }

    @Test("to(_:) copies to the device and back; values read on the device synchronise and equal the CPU's, views included")
    func roundTrip() throws {
        _ = try Self.tensors.get()
        for dtype in [DType.float64, .float32, .int64, .int32, .bool] {
            let x = try Tensor.arange(0, 12, dtype: .float64).reshaped([3, 4]).cast(to: dtype)
            let d = try x.to(Self.device)
            #expect(d.device == Self.device && d.storage.deviceMemory != nil)
            #expect(d.valueType == x.valueType)
            let back = try d.to(.cpu)
            #expect(back.device == .cpu && back.storage.deviceMemory == nil)
            #expect(back.doubles == x.doubles, "\(dtype)")
            #expect(d.doubles == x.doubles, "\(dtype): reading a device tensor's values")
            #expect(d.description == x.description.replacingOccurrences(of: "] ", with: "] on cuda:9 ", options: [], range: x.description.range(of: "] ")))
            #expect(try d.to(Self.device).sharesStorage(with: d))
        }
        let rows = try Self.uniform([5, 3], 1).to(Self.device)
        let row = try rows[2]   // a view sharing the device storage
        #expect(try row.to(.cpu).doubles == (try rows.to(.cpu)[2]).doubles)
        #expect(try (row * 2).to(.cpu).doubles == (try rows.to(.cpu)[2] * 2).doubles)
    }

    @Test("elementwise operators, broadcasts, reductions, softmax, comparisons and a mean squared error on the device are the CPU's bit for bit; results stay there")
    func operators() throws {
        _ = try Self.tensors.get()
        for dtype in [DType.float64, .float32] {
            let a = try Self.uniform([4, 6], 2, dtype), b = try Self.uniform([6], 3, dtype)
            let (da, db) = (try a.to(Self.device), try b.to(Self.device))
            let cases: [(String, (Tensor, Tensor) throws -> Tensor)] = [
                ("add", { try $0 + $1 }), ("mul", { try $0 * $1 }), ("div", { try $0 / ($1 + 3) }),
                ("exp", { x, _ in try x.exp() }), ("tanh", { x, _ in try x.tanh() }), ("relu", { x, _ in try x.relu() }),
                ("scalar", { x, _ in try x * 2.5 - 1 }),
                ("sum", { x, _ in try x.sum(axes: [0]) }), ("mean", { x, _ in try x.mean() }), ("max", { x, _ in try x.max(axes: [1]) }),
                ("softmax", { x, _ in try x.softmax(axis: 1) }), ("logsumexp", { x, _ in try x.logsumexp(axes: [1]) }),
                ("where", { x, y in try Tensor.select(x.greater(y), x, y) }),
                ("transpose", { x, _ in try x.transposed() }), ("reshape", { x, _ in try x.reshaped([6, 4]) }),
                ("meanSquaredError", { x, y in try x.meanSquaredError(y.broadcast(to: [4, 6])) }),
            ]
            for (name, f) in cases {
                let expected = try f(a, b), got = try f(da, db)
                #expect(got.device == Self.device, "\(name) \(dtype)")
                let host = try got.to(.cpu)
                #expect(host.valueType == expected.valueType && Self.bits(host) == Self.bits(expected), "\(name) \(dtype)")
            }
            let m = try Self.uniform([6, 5], 4, dtype)
            let product = try da.matmul(try m.to(Self.device)).to(.cpu), cpu = try a.matmul(m)
            #expect(DeviceProgramTests.relativeDifference(product, cpu) <= 1e-6)
        }
    }

    @Test("every operator runs on device tensors, on float, integer, bool and 16-bit operands alike: the CPU's results (bit for bit but a matmul's rounding)")
    func everyOperator() throws {
        _ = try Self.tensors.get()
        let x = try Self.uniform([4, 6, 3], 11), y = try Self.uniform([6, 3], 12) + 2, m = try Self.uniform([3, 5], 13)
        let labels = Tensor([Int64](arrayLiteral: 2, 0, 5, 1)), counts = try Tensor((0..<18).map { Int32($0 % 7) }).reshaped([6, 3])
        let mask = try x.greater(0), half = try x.cast(to: .float16)
        /// `f` on the operands' copies on the device, as the CPU computes it on them.
        func check(_ op: OpCode, _ operands: [Tensor], rounding: Bool = false, _ f: ([Tensor]) throws -> Tensor) throws {
            let expected = try f(operands), got = try f(try operands.map { try $0.to(Self.device) })
            #expect(got.device == Self.device, "\(op.rawValue)")
            let host = try got.to(.cpu)
            let same = host.valueType == expected.valueType
                && (rounding ? DeviceProgramTests.relativeDifference(host, expected) <= 1e-14 : Self.words(host) == Self.words(expected))
            #expect(same, "\(op.rawValue)")
        }
        func inPlace(_ op: OpCode, _ operands: [Tensor], _ f: (inout Tensor, [Tensor]) throws -> Void) throws {
            try check(op, operands) { v in
                var target = v[0]
                try f(&target, Array(v.dropFirst()))
                return target
            }
        }
        // A switch over every operator, without a default: a new operator needs its case here.
        for op in OpCode.allCases {
            switch op {
            case .full, .arange, .linspace, .randomUniform, .randomNormal:
                continue   // made on the host; to(_:) copies them (roundTrip)
            case .customCall:
                continue   // a registered operator's own forward (customOperators)
            case .neg, .abs, .sign, .exp, .expm1, .log, .log1p, .sqrt, .rsqrt, .sin, .cos, .tanh, .sigmoid, .relu, .softplus:
                try check(op, [y]) { v in try dispatch(op, .none, [v[0]])[0] }
            case .add, .sub, .mul, .div, .pow, .maximum, .minimum:
                try check(op, [x, y]) { v in try dispatch(op, .none, [v[0], v[1]])[0] }
            case .multiplyAdd:
                try check(op, [x, y, m.slice([0..<1]).reshaped([5]).slice([0..<3])]) { v in try v[0].multiplied(by: v[1], adding: v[2]) }
            case .equal, .notEqual, .less, .lessEqual, .greater, .greaterEqual:
                try check(op, [x, y]) { v in try dispatch(op, .none, [v[0], v[1]])[0] }
                try check(op, [counts, counts.transposed().reshaped([6, 3])]) { v in try dispatch(op, .none, [v[0], v[1]])[0] }
            case .select:
                try check(op, [mask, x, counts.cast(to: .float64)]) { v in try Tensor.select(v[0], v[1], v[2]) }
                try check(op, [mask.slice([0..<1]).reshaped([6, 3]), counts, counts.transposed().reshaped([6, 3])]) { v in try Tensor.select(v[0], v[1], v[2]) }
            case .sum, .mean, .max, .min, .logsumexp:
                for axes in [[], [1], [0, 2], [2, 0, 1]] {
                    try check(op, [x]) { v in try dispatch(op, .reduction(axes: axes, keepDims: axes.count == 1), [v[0]])[0] }
                }
            case .argmax:
                try check(op, [x]) { v in try v[0].argmax(axis: 1) }
            case .matmul:
                try check(op, [x, m], rounding: true) { v in try v[0].matmul(v[1]) }
            case .reshape:
                for t in [x, counts, mask, half] { try check(op, [t]) { v in try v[0].reshaped([-1]) } }
            case .transpose:
                for t in [x, counts, mask, half] { try check(op, [t]) { v in try v[0].transposed(Array((0..<t.rank).reversed())) } }
            case .broadcastTo:
                for t in [y, counts, try mask.slice([0..<1]).reshaped([6, 3])] { try check(op, [t]) { v in try v[0].broadcast(to: [2, 6, 3]) } }
            case .slice:
                for t in [x, half, mask] { try check(op, [t]) { v in try v[0].slice(starts: [1, 2, 0], ends: [3, 5, 2]) } }
            case .concat:
                for t in [x, counts, mask] { try check(op, [t]) { v in try Tensor.concat([v[0], v[0]], axis: 1) } }
            case .stack:
                for t in [y, counts] { try check(op, [t]) { v in try Tensor.stack([v[0], v[0]], axis: 1) } }
            case .pad:
                for t in [y, counts, try half.slice([0..<1]).reshaped([6, 3])] { try check(op, [t]) { v in try v[0].padded(low: [1, 0], high: [0, 2], value: 3) } }
            case .gather:
                try check(op, [x, labels]) { v in try v[0].gather(v[1], axis: 1) }
                try check(op, [counts, labels]) { v in try v[0].gather(v[1]) }
            case .scatterAdd:
                try check(op, [y, labels, y.slice([0..<4])]) { v in try v[0].scatterAdd(v[1], v[2]) }
            case .oneHot:
                try check(op, [labels]) { v in try v[0].oneHot(depth: 6, dtype: .float32) }
            case .softmax, .logSoftmax:
                try check(op, [x]) { v in try dispatch(op, .axis(1), [v[0]])[0] }
            case .crossEntropyWithLogits:
                try check(op, [y.slice([0..<4]), Tensor([Int32](arrayLiteral: 2, 0, 1, 1))]) { v in try v[0].crossEntropy(labels: v[1]) }
            case .meanSquaredError:
                try check(op, [x, y.broadcast(to: [4, 6, 3])]) { v in try v[0].meanSquaredError(v[1]) }
            case .cast:
                for (t, dtype) in [(x, DType.float16), (counts, .float64), (mask, .int32), (half, .bfloat16)] { try check(op, [t]) { v in try v[0].cast(to: dtype) } }
            case .addInPlace:
                try inPlace(op, [x, y]) { t, v in try t.add_(v[0]) }
            case .mulInPlace:
                try inPlace(op, [x, y]) { t, v in try t.mul_(v[0]) }
            case .multiplyAddInPlace:
                try inPlace(op, [x, Tensor(-0.5), y]) { t, v in try t.multiplyAdd_(v[0], v[1]) }
            case .assignInPlace:
                try inPlace(op, [x, y.slice([0..<2]).reshaped([1, 2, 3])]) { t, v in try t.assign(v[0], at: [1..<2, 3..<5, 0..<3]) }
            }
        }
    }

    @Test("casts between float64, float32, float16, bfloat16, int64, int32 and bool, and argmax, on the device are the CPU's bit for bit, errors included")
    func castsAndArgmax() throws {
        _ = try Self.tensors.get()
        let values: [Double] = [0, -0.0, 1.5, -2.5, 2.9, -7.99, 3e9, -3e9, 1e18, 0.1, 123456789.123, -1]
        let x = Tensor(values)
        let types: [DType] = [.float64, .float32, .float16, .bfloat16, .int64, .int32, .bool]
        for from in types {
            // Each source type holds what it can of the values (int32 without ±3e9, 1e18).
            let source: Tensor
            switch from {
            case .int32: source = try Tensor(values.map { Swift.abs($0) < 2e9 ? $0 : 7 }).cast(to: .int32)
            case .int64, .bool: source = try x.cast(to: from)
            default: source = try x.cast(to: from)
            }
            let device = try source.to(Self.device)
            for to in types {
                var expected: Result<[UInt64], TensorError>
                do { expected = .success(Self.words(try source.cast(to: to))) } catch let e as TensorError { expected = .failure(e) }
                var got: Result<[UInt64], TensorError>
                do { got = .success(Self.words(try device.cast(to: to).to(.cpu))) } catch let e as TensorError { got = .failure(e) }
                #expect(got == expected, "\(from) → \(to)")
            }
        }
        // The 16-bit floats' rounding: ties to even, float16's overflow at 65520, its subnormals
        // and their ties (2⁻²⁵ to zero), bfloat16's ties, infinities, NaNs (and a payload), ±0.
        let edges: [Double] = [65504, 65519.99, 65520, 65536, 1e6, -70000, 6.103515625e-5, 6.1e-5, 5.960464477539063e-8,
                               2.98023223876953125e-8, 2.9802322387695313e-8, 8.940696716308594e-8, 1e-7, 1e-300, 1.00048828125,
                               1.00146484375, 1 + 0x1p-8, 1 + 0x1p-7 + 0x1p-8, 1 + 0x1p-8 + 0x1p-30, 3.4e38, .infinity, -.infinity,
                               .nan, Double(bitPattern: 0x7FF4_0000_0000_0001), -0.0, 0, 12345.678]
        for from in [DType.float64, .float32] {
            let source = try Tensor(edges).cast(to: from), device = try source.to(Self.device)
            for to in [DType.float16, .bfloat16] {
                let expected = try source.cast(to: to), got = try device.cast(to: to).to(.cpu)
                #expect(Self.halfWords(got) == Self.halfWords(expected), "\(from) → \(to)")
                for back in [DType.float64, .float32, .float16, .bfloat16, .bool] where back != to {
                    let e = try expected.cast(to: back), g = try expected.to(Self.device).cast(to: back).to(.cpu)
                    let same = back == .float16 || back == .bfloat16 ? Self.halfWords(g) == Self.halfWords(e) : Self.words(g) == Self.words(e)
                    #expect(same, "\(to) → \(back)")
                }
            }
        }
        // Errors: the first element out of range, as the CPU names it.
        let failing: [(Tensor, DType)] = [(Tensor([1.0, .nan, .infinity]), .int64), (Tensor([Float(1), 5e9]), .int32), (Tensor([Int64(1), 1 << 40]), .int32),
                                          (try Tensor([1.0, 2, 65504, .infinity]).cast(to: .float16), .int32),
                                          (try Tensor([1.0, 3e9]).cast(to: .bfloat16), .int32)]
        for (source, to) in failing {
            var expected = "", got = ""
            do { _ = try source.cast(to: to) } catch { expected = "\(error)" }
            do { _ = try source.to(Self.device).cast(to: to).to(.cpu) } catch { got = "\(error)" }
            #expect(!expected.isEmpty && got == expected)
        }
        let m = try Tensor([1.0, 3, 3, -1, .nan, 2, .nan, 0, -5, -4, -4, -6]).reshaped([3, 4])
        for dtype in [DType.float64, .float32] {
            let h = try m.cast(to: dtype), d = try h.to(Self.device)
            for (axis, keep) in [(0, false), (1, false), (1, true), (-1, false)] {
                let expected = try h.argmax(axis: axis, keepDims: keep), got = try d.argmax(axis: axis, keepDims: keep).to(.cpu)
                #expect(got.valueType == expected.valueType && got.scalars(as: Int64.self) == expected.scalars(as: Int64.self), "\(dtype) axis \(axis)")
            }
        }
    }

    /// The elements as 64-bit words (bits of floats, values of integers and booleans).
    /// A 16-bit float tensor's elements as their bits.
    static func halfWords(_ t: Tensor) -> [UInt16] {
        t.dtype == .float16 ? t.scalars(as: Float16.self).map(\.bitPattern) : t.scalars(as: BFloat16.self).map(\.bitPattern)
    }

    static func words(_ t: Tensor) -> [UInt64] {
        switch t.dtype {
        case .float64, .float32: bits(t)
        case .int64: t.scalars(as: Int64.self).map { UInt64(bitPattern: $0) }
        case .int32: t.scalars(as: Int32.self).map { UInt64(bitPattern: Int64($0)) }
        default: t.doubles.map { $0.bitPattern }
        }
    }

    @Test("operands on different devices are a typed error naming the operand; a CPU scalar goes with any device")
    func mixedDevices() throws {
        _ = try Self.tensors.get()
        let x = try Self.uniform([3], 5), d = try x.to(Self.device)
        #expect(throws: TensorError.deviceMismatch(op: "binary.add", detail: "operand 1 (f64[3]) is on the CPU, another operand on cuda:9: copy it there with Tensor.to(_:) (only scalars, rank 0, go with any device)")) {
            try d + x
        }
        #expect(try (d + Tensor(2.0)).to(.cpu).doubles == (try x + 2).doubles)
        #expect(throws: DeviceError.unavailable(device: .cuda(5), reason: "only GPU 0 is used")) { try x.to(.cuda(5)) }
        var written = d
        #expect(throws: TensorError.self) { try written.withUnsafeMutableScalars(as: Double.self) { $0[0] = 1 } }
    }

    @Test("in-place operators give a device tensor new storage: other holders keep the old value")
    func inPlace() throws {
        _ = try Self.tensors.get()
        let x = try Self.uniform([4, 3], 6), g = try Self.uniform([4, 3], 7)
        var d = try x.to(Self.device)
        let held = d
        try d.add_(try g.to(Self.device))
        try d.multiplyAdd_(Tensor(-0.5), try g.to(Self.device))
        try d.assign(try Tensor.zeros([3]).to(Self.device), at: [1..<2])
        var cpu = x
        try cpu.add_(g)
        try cpu.multiplyAdd_(Tensor(-0.5), g)
        try cpu.assign(try Tensor.zeros([3]), at: [1..<2])
        #expect(d.device == Self.device)
        #expect(Self.bits(try d.to(.cpu)) == Self.bits(cpu))
        #expect(Self.bits(try held.to(.cpu)) == Self.bits(x))
    }

    @Test("gradients, forward-mode derivatives and compiled steps of device tensors are the CPU's, and stay on the device")
    func transforms() throws {
        _ = try Self.tensors.get()
        let x = try Self.uniform([16, 5], 8, .float32), labels = Tensor((0..<16).map { Int64($0 % 3) })
        let w = [try Self.uniform([5, 7], 9, .float32), try Self.uniform([7], 10, .float32), try Self.uniform([7, 3], 11, .float32)]
        func loss(_ x: Tensor, _ labels: Tensor, _ w: [Tensor]) throws -> Tensor {
            try (x.matmul(w[0]) + w[1]).relu().matmul(w[2]).crossEntropy(labels: labels).mean()
        }
        let (dx, dl) = (try x.to(Self.device), try labels.to(Self.device))
        let dw = try w.map { try $0.to(Self.device) }
        let (value, grads) = try valueWithGradient(at: w) { try loss(x, labels, $0) }
        let (dValue, dGradient) = try valueWithGradient(at: dw) { try loss(dx, dl, $0) }
        #expect(dValue.device == Self.device && dGradient.allSatisfy { $0.device == Self.device })
        #expect(DeviceProgramTests.relativeDifference(try dValue.to(.cpu), value) <= 1e-6)
        for (a, b) in zip(dGradient, grads) { #expect(DeviceProgramTests.relativeDifference(try a.to(.cpu), b) <= 1e-6) }

        // A gather's gradient makes its zeros on the device.
        let table = try Self.uniform([6, 2], 12), index = Tensor([Int64(4), 1, 4])
        let g = try gradient(at: table) { try $0.gather(index, axis: 0).sum() }
        let dg = try gradient(at: try table.to(Self.device)) { try $0.gather(try index.to(Self.device), axis: 0).sum() }
        #expect(try dg.device == Self.device && Self.bits(try dg.to(.cpu)) == Self.bits(g))

        // Zeros and ones made for a device; on the CPU without one there.
        let zeros = try Tensor.zeros([2, 3], dtype: .float32, on: Self.device)
        #expect(try zeros.device == Self.device && zeros.to(.cpu).doubles == [Double](repeating: 0, count: 6))
        #expect(try Tensor.ones([2], on: Self.device).to(.cpu).doubles == [1, 1] && Tensor.ones([2], on: .cpu).device == .cpu)
        #expect(throws: TensorError.deviceUnavailable(device: .cuda(11), reason: "no backend is loaded for it (Tensor.to(_:) loads CUDA's)")) {
            try Tensor.zeros([2], on: .cuda(11))
        }

        // An input the result does not depend on gets zeros on its device.
        let unused = try gradient(at: [try table.to(Self.device), try x.to(Self.device)]) { v in try v[0].sum() }
        #expect(try unused[1].device == Self.device && (try unused[1].to(.cpu)).doubles.allSatisfy { $0 == 0 })

        let direction = try Self.uniform([6, 2], 13)
        let (_, tangent) = try jvp(at: table, direction: direction) { try ($0 * $0).tanh().sum(axes: [1]) }
        let (_, dTangent) = try jvp(at: try table.to(Self.device), direction: try direction.to(Self.device)) { try ($0 * $0).tanh().sum(axes: [1]) }
        #expect(try dTangent.device == Self.device && Self.bits(try dTangent.to(.cpu)) == Self.bits(tangent))

        let step = compile(device: Self.device) { (v: [Tensor]) -> [Tensor] in
            let g = try gradient(at: Array(v[2...])) { try loss(v[0], v[1], $0) }
            return try zip(v[2...], g).map { try $0 - $1 * 0.1 }
        }
        let next = try step([dx, dl] + dw)
        #expect(next.allSatisfy { $0.device == Self.device })
        let cpuNext = try zip(w, grads).map { try $0 - $1 * 0.1 }
        for (a, b) in zip(next, cpuNext) { #expect(DeviceProgramTests.relativeDifference(try a.to(.cpu), b) <= 1e-6) }
        #expect(throws: TensorError.self) { _ = try gradient(at: x) { try $0.to(Self.device).sum() } }
    }

    @Test("unroll through time on device tensors gives the CPU's loss and gradients, with every checkpoint schedule")
    func unrollOnDevice() throws {
        _ = try Self.tensors.get()
        typealias Step = TensorStep<Tensor, Tensor, [String: Tensor], Tensor>
        let step = Step { s, x, p in
            let next = try (p["A"]!.matmul(s) + p["b"]! + x).tanh()
            return (next, try (next * next).sum())
        }
        let loss = Step.Loss.both(perStep: { s, y in try (s - 0.3).pow(2).mean() + y * 0.01 }, final: { s in try (s * s).sum() })
        let parameters = ["A": try Self.uniform([4, 4], 17), "b": try Self.uniform([4, 1], 18)]
        let s0 = try Self.uniform([4, 1], 19), inputs = try (0..<9).map { try Self.uniform([4, 1], 20 + UInt64($0)) }
        let dParameters = try parameters.mapValues { try $0.to(Self.device) }
        let (dS0, dInputs) = (try s0.to(Self.device), try inputs.map { try $0.to(Self.device) })
        for schedule in [CheckpointSchedule.storeAll, .binomial(snapshots: 3)] {
            let cpu = try unroll(step, from: s0, parameters: parameters, inputs: inputs, loss: loss, schedule: schedule)
            let device = try unroll(step, from: dS0, parameters: dParameters, inputs: dInputs, loss: loss, schedule: schedule)
            #expect(device.loss.bitPattern == cpu.loss.bitPattern, "\(schedule)")
            #expect(try device.finalState.device == Self.device && Self.bits(try device.finalState.to(.cpu)) == Self.bits(cpu.finalState))
            for name in ["A", "b"] {
                let g = try #require(device.parameterGradient[name])
                #expect(g.device == Self.device, "\(name)")
                #expect(DeviceProgramTests.relativeDifference(try g.to(.cpu), cpu.parameterGradient[name]!) <= 1e-12, "\(name) \(schedule)")
            }
        }
    }

    @Test("device tensors are charged to the memory accounts of the scope that made them, so a memory quota counts them")
    func memoryAccounts() throws {
        _ = try Self.tensors.get()
        let d = try Self.uniform([64, 64], 40).to(Self.device), bytes = 64 * 64 * 8
        _ = try d * 2   // the operator's program made outside the scope
        let account = MemoryAccount()
        var held: Tensor?
        try account.track { held = try d * 2 }
        #expect(held?.storage.isOnDevice == true && account.liveBytes >= bytes && account.peakBytes >= bytes)
        held = nil
        #expect(account.liveBytes == 0)
        do {
            try ResourceLimits(memoryQuota: bytes / 2).enforce { _ = try d * 2 }
            Issue.record("a device result over the quota was allowed")
        } catch let error as ResourceError {
            guard case let .memoryQuotaExceeded(_, used, quota) = error else { Issue.record("\(error)"); return }
            #expect(used >= bytes && quota == bytes / 2)
        }
    }

    @Test("an index out of range on the device throws the CPU's error, for the first one in order even where another thread finds its own first")
    func indexErrors() throws {
        _ = try Self.tensors.get()
        let table = try Self.uniform([4, 2], 14)
        // More indices than the check's block has threads: bad ones at 900, 513 and 700 (threads
        // 132, 1 and 188 of 256), so the first in order is not the first thread's.
        var many = [Int64](repeating: 2, count: 1000)
        (many[900], many[513], many[700]) = (9, -1, 4)
        for bad in [Tensor([Int64(1), 7]), Tensor(many), try Tensor(many).cast(to: .int32)] {
            var expected: (any Error)?
            do { _ = try table.gather(bad, axis: 0) } catch { expected = error }
            do {
                _ = try table.to(Self.device).gather(try bad.to(Self.device), axis: 0)
                Issue.record("no error")
            } catch {
                #expect("\(error)" == "\(expected!)")
            }
        }
        // Casts likewise: a NaN at 900, 3e10 at 513, −∞ at 700; an int64 too wide for int32 at 600 and 257.
        var values = [Double](repeating: 1, count: 1000)
        (values[900], values[513], values[700]) = (.nan, 3e10, -.infinity)
        var wide = [Int64](repeating: 1, count: 1000)
        (wide[600], wide[257]) = (1 << 40, -(1 << 40))
        for (source, to) in [(Tensor(values), DType.int32), (try Tensor(values).cast(to: .float16), .int64), (Tensor(wide), .int32)] {
            var expected = "", got = ""
            do { _ = try source.cast(to: to) } catch { expected = "\(error)" }
            do { _ = try source.to(Self.device).cast(to: to).to(.cpu) } catch { got = "\(error)" }
            #expect(!expected.isEmpty && got == expected, "\(got)")
        }
    }

    @Test("operator programs are made once per signature and thread; device memory goes back to the pool with the tensors; events and synchronize")
    func programsAndMemory() throws {
        // A device of its own: the counters are no other test's.
        let device = Device.cuda(10), tensors = DeviceRuntime.install(DeviceMemoryPool(device: try HostKernelEmulator()), as: device)
        func work() throws -> Tensor {
            let x = try Self.uniform([64, 64], 15).to(device)
            return try (try x.exp()).exp() + x
        }
        _ = try work() * 2   // makes the operators' programs (they hold no frames, only constants)
        let programs = tensors.programCount, before = tensors.pool.statistics.liveBytes
        #expect(programs == 3)   // exp (twice, one signature), add, mul
        do {
            let y = try work()
            #expect(tensors.programCount == programs)
            #expect(try device.memoryStatistics().liveBytes >= before + 64 * 64 * 8)
            let start = try DeviceEvent(recordedOn: device)
            _ = try y * 2
            let end = try DeviceEvent(recordedOn: device)
            try end.synchronize()
            #expect(try end.isComplete() && end.milliseconds(since: start) >= 0)
            try device.synchronize()
        }
        #expect(tensors.programCount == programs)
        #expect(tensors.pool.statistics.liveBytes == before)
        #expect(throws: DeviceError.self) { try DeviceEvent(recordedOn: .cpu) }
        // Elementwise arithmetic without index tables reads its operands where they are and writes
        // its result's block: the peak rises by the result alone (a CPU scalar's block besides).
        // Broadcasting operands are read through their strides.
        let (p, q) = (try Self.uniform([64, 64], 25), try Self.uniform([64, 64], 26))
        let (row, column) = (try Self.uniform([64], 27), try Self.uniform([64, 1], 28))
        let (dp, dq, drow, dcolumn) = (try p.to(device), try q.to(device), try row.to(device), try column.to(device))
        let elementwise: [(String, Int, ([Tensor]) throws -> Tensor)] = [
            ("mul", 0, { try $0[0] * $0[1] }), ("exp", 0, { try $0[0].exp() }), ("multiplyAdd", 0, { try $0[0].multiplied(by: $0[1], adding: $0[0]) }),
            ("a CPU scalar", StoragePool.capacity(for: 8), { try $0[0] * 2.5 }),
            ("a row broadcast", 0, { try $0[2] - $0[0] }), ("a column broadcast", 0, { try $0[0] / $0[3] }),
            ("a broadcast multiply-add", 0, { try $0[2].multiplied(by: $0[3], adding: $0[0]) }),
        ]
        // So do reductions (over one run of axes, over axes that are not one, a log-sum-exp) and
        // the operators the CPU interprets, those that check their indices or values first too
        // (the check's status read back): the peak rises by the result alone.
        let cube = try Self.uniform([8, 16, 32], 29), dcube = try cube.to(device)
        let square = try Tensor((0..<64).map { Int64($0 % 7) }, shape: [8, 8]), dsquare = try square.to(device)
        let labels = try Tensor((0..<64).map { Int64($0 * 5 % 64) }, shape: [64]), dlabels = try labels.to(device)
        // The blocks each call adds besides its result's (one made of other operators holds
        // theirs too: a `where`'s comparison, a product with a scalar).
        let others: [(String, [Int], ([Tensor]) throws -> Tensor)] = [
            ("sum", [], { try $0[0].sum() }), ("mean over rows", [], { try $0[0].mean(axes: [0]) }),
            ("max over columns", [], { try $0[0].max(axes: [1]) }), ("logsumexp", [], { try $0[0].logsumexp(axes: [1]) }),
            ("sum over axes 0 and 2", [], { try $0[1].sum(axes: [0, 2]) }), ("min over axes 0 and 2", [], { try $0[1].min(axes: [0, 2]) }),
            ("softmax", [], { try $0[0].softmax(axis: 1) }), ("log-softmax", [], { try $0[0].logSoftmax(axis: 0) }),
            ("less", [], { try $0[0].less($0[2]) }), ("where", [64 * 64], { try Tensor.select($0[0].greater(0), $0[0], $0[2]) }),
            ("argmax", [], { try $0[0].argmax(axis: 1) }), ("mean squared error", [64 * 64 * 8], { try $0[0].meanSquaredError($0[0] * 0.5) }),
            ("cast to float32", [], { try $0[0].cast(to: .float32) }), ("an int64 transpose", [], { try $0[3].transposed() }),
            ("cast to int32", [], { try $0[0].cast(to: .int32) }), ("one-hot", [], { try $0[3].oneHot(depth: 7) }),
            ("gather", [], { try $0[0].gather($0[4], axis: 1) }), ("scatter-add", [], { try $0[0].scatterAdd($0[4], $0[0]) }),
            ("cross-entropy", [], { try $0[0].crossEntropy(labels: $0[4]) }),
            // Layout operators on floats, which the planner makes gathers: their layout kernels.
            ("a float transpose", [], { try $0[0].transposed() }), ("a float slice of columns", [], { try $0[0].slice(starts: [0, 8], ends: [64, 40]) }),
            ("a float broadcast", [], { try $0[2].broadcast(to: [64, 64]) }), ("a float pad", [], { try $0[0].padded(low: [1, 0], high: [0, 2], value: 0.5) }),
            ("a float concatenation", [], { try Tensor.concat([$0[0], $0[2].reshaped([1, 64])], axis: 0) }),
        ]
        for (name, extra, f) in others {
            let operands = [dp, dcube, drow, dsquare, dlabels]
            _ = try f(operands)   // the program made
            try device.synchronize()
            tensors.pool.resetPeak()
            let live = tensors.pool.statistics.liveBytes
            let y = try f(operands)
            let blocks = extra + [y.elementCount * y.dtype.byteSize]
            #expect(tensors.pool.statistics.peakBytes - live == blocks.reduce(0) { $0 + StoragePool.capacity(for: $1) }, "\(name)")
            #expect(Self.bits(try y.to(.cpu)) == Self.bits(try f([p, cube, row, square, labels])), "\(name)")
        }
        // A reshape, or a slice of whole rows, is a view of its operand's storage, as the CPU's
        // is: nothing allocated, nothing copied.
        let views: [(String, (Tensor) throws -> Tensor)] = [("reshape", { try $0.reshaped([32, 128]) }), ("rows", { try $0.slice(starts: [8, 0], ends: [40, 64]) })]
        for (name, f) in views {
            _ = try f(dp)   // the program made
            try device.synchronize()
            tensors.pool.resetPeak()
            let live = tensors.pool.statistics.liveBytes
            let y = try f(dp)
            #expect(tensors.pool.statistics.peakBytes == live && y.storage === dp.storage, "\(name)")
            #expect(Self.bits(try y.to(.cpu)) == Self.bits(try f(p)), "\(name)")
        }
        for (name, extra, f) in elementwise {
            _ = try f([dp, dq, drow, dcolumn])   // the program made
            try device.synchronize()
            tensors.pool.resetPeak()
            let live = tensors.pool.statistics.liveBytes
            let y = try f([dp, dq, drow, dcolumn])
            #expect(tensors.pool.statistics.peakBytes - live == StoragePool.capacity(for: 64 * 64 * 8) + extra, "\(name)")
            #expect(Self.bits(try y.to(.cpu)) == Self.bits(try f([p, q, row, column])), "\(name)")
        }
        // A matrix product reads its operands where they are and writes its result's block: the
        // peak rises by the result alone (no frame, no copies), for one product and a batch.
        for (shapes, seed) in [([[64, 32], [32, 48]], UInt64(17)), ([[3, 64, 32], [3, 32, 48]], 19)] {
            let (a, b) = (try Self.uniform(shapes[0], seed), try Self.uniform(shapes[1], seed + 1))
            let (x, w) = (try a.to(device), try b.to(device))
            _ = try x.matmul(w)   // the program made
            try device.synchronize()
            tensors.pool.resetPeak()
            let live = tensors.pool.statistics.liveBytes
            let y = try x.matmul(w)
            #expect(tensors.pool.statistics.peakBytes - live == StoragePool.capacity(for: y.elementCount * 8), "\(shapes)")
            #expect(DeviceProgramTests.relativeDifference(try y.to(.cpu), try a.matmul(b)) <= 1e-14, "\(shapes)")
        }
    }

    @Test("a tensor made on one thread is used on another thread's stream")
    func otherThreads() async throws {
        _ = try Self.tensors.get()
        let x = try Self.uniform([8], 16), d = try x.to(Self.device)
        let got = try await Task.detached { try (d * d).to(.cpu) }.value
        #expect(Self.bits(got) == Self.bits(try x * x))
    }

    @Test("custom operators on device tensors: a forward over tensors runs there; one with raw loops runs on the host and its result, and its derivatives, go to the device")
    func customOperators() throws {
        _ = try Self.tensors.get()
        // Over tensor operators: x·tanh(x), VJP g·(tanh x + x(1 − tanh² x)), JVP likewise.
        try CustomOperators.register(CustomOperator(name: "device.xtanh", forward: { xs in try xs[0] * xs[0].tanh() },
            vjp: { xs, _, g in let t = try xs[0].tanh(); return [try g * (t + xs[0] * (1 - t * t))] },
            jvp: { xs, _, ts in let t = try xs[0].tanh(); return try ts[0].map { try $0 * (t + xs[0] * (1 - t * t)) } }), replacing: true)
        // With raw loops over the host values: x², its VJP 2x·g as a CPU tensor.
        try CustomOperators.register(CustomOperator(name: "device.square", forward: { xs in
            try Tensor(xs[0].scalars(as: Double.self).map { $0 * $0 }, shape: xs[0].shape)
        }, vjp: { xs, _, g in
            [try Tensor(zip(xs[0].scalars(as: Double.self), g.scalars(as: Double.self)).map { 2 * $0 * $1 }, shape: xs[0].shape)]
        }), replacing: true)
        // A forward whose result is on another device.
        let elsewhere = Device.cuda(12)
        _ = DeviceRuntime.install(DeviceMemoryPool(device: try HostKernelEmulator()), as: elsewhere)
        try CustomOperators.register(CustomOperator(name: "device.elsewhere", forward: { xs in try (xs[0] * 2).to(elsewhere) }), replacing: true)

        let x = try Self.uniform([5, 7], 21), d = try x.to(Self.device)
        for name in ["device.xtanh", "device.square"] {
            let y = try Tensor.custom(name, [d])
            #expect(y.device == Self.device && y.storage.isOnDevice, "\(name)")
            #expect(Self.bits(y) == Self.bits(try Tensor.custom(name, [x])), "\(name)")
            let g = try gradient(at: d) { try Tensor.custom(name, [$0]).sum() }
            #expect(g.device == Self.device && g.storage.isOnDevice, "\(name): the gradient stays on the device")
            #expect(Self.bits(g) == Self.bits(try gradient(at: x) { try Tensor.custom(name, [$0]).sum() }), "\(name)")
        }
        let direction = try Self.uniform([5, 7], 22)
        let (_, tangent) = try jvp(at: d, direction: try direction.to(Self.device)) { try Tensor.custom("device.xtanh", [$0]) }
        #expect(tangent.device == Self.device)
        #expect(Self.bits(tangent) == Self.bits(try jvp(at: x, direction: direction) { try Tensor.custom("device.xtanh", [$0]) }.1))
        #expect(throws: TensorError.deviceMismatch(op: "custom.call", detail: "the result is on cuda:12, the operands on cuda:9")) {
            try Tensor.custom("device.elsewhere", [d])
        }
        // A VJP whose CPU result an outer tape tracks (computed from a CPU tensor that tape
        // differentiates): copied to the device, the cotangent would lose its derivative, so it
        // is refused. (A forward's result is never tracked: it runs without the levels.)
        let weight = try Self.uniform([5, 7], 23)
        try CustomOperators.register(CustomOperator(name: "device.tracked", forward: { xs in
            try Tensor(xs[0].scalars(as: Double.self), shape: xs[0].shape)
        }, vjp: { _, _, g in [try weightCell.withLock { $0 } * 2] }), replacing: true)
        do {
            _ = try gradient(at: weight) { w in
                weightCell.withLock { $0 = w }
                return try gradient(at: d) { try Tensor.custom("device.tracked", [$0]).sum() }.to(.cpu).sum()
            }
            Issue.record("a tracked CPU cotangent was copied to the device")
        } catch let TensorError.invalidArgument(op, detail) {
            #expect(op.contains("the VJP of custom operator 'device.tracked'") && detail.contains("a tape, a forward-mode level or a trace tracks it"), "\(op): \(detail)")
        }
        // Untracked, the same cotangent goes to the device.
        weightCell.withLock { $0 = weight }
        let cotangent = try gradient(at: d) { try Tensor.custom("device.tracked", [$0]).sum() }
        let doubled = try weight * 2
        #expect(cotangent.device == Self.device && Self.bits(cotangent) == Self.bits(doubled))
    }
}

/// The weight the `device.tracked` custom operator's VJP reads.
private let weightCell = Lock(Tensor(0.0))
