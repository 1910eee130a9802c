import AdjointTensor
import Foundation

/// Runs a compiled program's generated CUDA kernels on a device (a GPU, or the host emulation the
/// tests use) against its native CPU code, run by run: what `adjoint-gpu-check` reports (see
/// `Documentation/GPU.md`).
///
/// For each chunked run, the program's instructions before it run on the CPU; the frame as it
/// then is goes to the device, the run's kernel (and its chunk-sum kernel) runs there over every
/// element, and the frame comes back; the CPU runs the same run natively on its own frame. The
/// two frames are compared element by element over what the run stores, and each fused
/// reduction's result (the device's partials combined on the host in the strict tree) with the
/// CPU's.
package enum GPUKernelCheck {
    /// One run's comparison.
    package struct Run: Codable, Sendable {
        package var run = 0, elements = 0
        /// Elements compared (stored results and reductions), those that differ, and the largest
        /// difference among them relative to the larger magnitude (or to 1, below it).
        package var compared = 0, differing = 0
        package var maximumRelativeDifference = 0.0
        package var cpuMilliseconds = 0.0, deviceMilliseconds = 0.0
    }

    /// The comparison of every chunked run of `program` called with `arguments`, its kernels
    /// run on `device` (a GPU, or ``HostKernelEmulator`` in the tests).
    package static func check(_ program: CompiledProgram, arguments: [Tensor], device driver: any KernelDevice, repeats: Int = 5) throws -> [Run] {
        guard let native = program.native, let source = program.cudaSource() else { return [] }
        let module = try driver.load(source)
        let bytes = program.statistics.frameBytes
        let frame = program.makeFrame()
        try program.bind(arguments, in: frame)
        let device = try driver.allocate(bytes)
        defer { driver.release(device) }
        var results: [Run] = []
        var cursor = 0
        for (r, run) in native.runs.enumerated() {
            try program.execute(cursor..<run.lowerBound, frame.base)
            let n = native.chunkedElements[r], reductions = native.chunkedReductions[r]
            let before = [UInt8](UnsafeRawBufferPointer(start: frame.base, count: bytes))
            // The device: the frame before the run, the run, the frame back.
            let kernel = NativeCodeGenerator.chunkedFunctionName(r)
            let scratch = try driver.allocate(reductions.count * n * 8), partials = try driver.allocate(native.partialBytes[r])
            defer { driver.release(scratch); driver.release(partials) }
            var deviceTimes: [Double] = []
            var deviceFrame = [UInt8](repeating: 0, count: bytes)
            var devicePartials = [UInt8](repeating: 0, count: Swift.max(native.partialBytes[r], 1))
            for _ in 0..<repeats {
                try before.withUnsafeBytes { try driver.copy($0.baseAddress!, toDevice: device, bytes: bytes) }
                let start = DispatchTime.now().uptimeNanoseconds
                try module.launch(kernel, blocks: (n + 255) / 256, threads: 256, arguments: [device, 0, UInt64(n), 0, scratch])
                if !reductions.isEmpty {
                    let chunks = (n + Parallelism.elementChunk - 1) / Parallelism.elementChunk
                    try module.launch(kernel + "_sums", blocks: (chunks + 31) / 32, threads: 32, arguments: [scratch, partials])
                }
                try driver.synchronize()
                deviceTimes.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
            }
            try deviceFrame.withUnsafeMutableBytes { try driver.copy(device, toHost: $0.baseAddress!, bytes: bytes) }
            if native.partialBytes[r] > 0 {
                try devicePartials.withUnsafeMutableBytes { try driver.copy(partials, toHost: $0.baseAddress!, bytes: native.partialBytes[r]) }
            }
            deviceFrame.withUnsafeMutableBytes { frameBytes in
                devicePartials.withUnsafeMutableBytes { p in
                    program.combine(reductions, partials: p.baseAddress!, elements: n, into: frameBytes.baseAddress!)
                }
            }
            // The CPU: the same run, natively.
            var cpuTimes: [Double] = []
            for _ in 0..<repeats {
                before.withUnsafeBytes { frame.base.copyMemory(from: $0.baseAddress!, byteCount: bytes) }
                let start = DispatchTime.now().uptimeNanoseconds
                program.runChunked(r, native, frame.base)
                cpuTimes.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
            }
            var result = Run(run: r, elements: n, cpuMilliseconds: cpuTimes.min() ?? 0, deviceMilliseconds: deviceTimes.min() ?? 0)
            // What the run writes: its instructions' results (those it stores; the others are in
            // neither frame) and its reductions'.
            deviceFrame.withUnsafeBytes { gpu in
                for k in run {
                    let i = program.instructions[k]
                    let count = i.kind == .reduce ? 1 : i.n
                    for e in 0..<count {
                        let (a, b): (Double, Double)
                        if i.float64 {
                            a = (frame.base + i.y).load(fromByteOffset: e * 8, as: Double.self)
                            b = gpu.load(fromByteOffset: i.y + e * 8, as: Double.self)
                        } else {
                            a = Double((frame.base + i.y).load(fromByteOffset: e * 4, as: Float.self))
                            b = Double(gpu.load(fromByteOffset: i.y + e * 4, as: Float.self))
                        }
                        result.compared += 1
                        guard a.bitPattern != b.bitPattern, !(a.isNaN && b.isNaN) else { continue }
                        result.differing += 1
                        let relative = abs(a - b) / Swift.max(abs(a), abs(b), 1)
                        result.maximumRelativeDifference = Swift.max(result.maximumRelativeDifference, relative.isNaN ? .infinity : relative)
                    }
                }
            }
            results.append(result)
            cursor = run.upperBound
        }
        return results
    }
}
