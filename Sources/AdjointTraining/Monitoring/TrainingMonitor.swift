import AdjointAutodiff
import AdjointTensor
import Foundation
import AdjointIO

/// Statistics of one tensor: mean, standard deviation, extremes over the finite elements, and how
/// many elements were NaN or infinite.
public struct TensorStatistics: Codable, Equatable, Sendable {
    public var mean: Double
    public var std: Double
    public var min: Double
    public var max: Double
    public var nonFinite: Int

    public init(_ t: Tensor) throws {
        let values = t.dtype.isFloatingPoint ? t.doubles : try t.cast(to: .float64).doubles
        var sum = 0.0, sumSquares = 0.0, low = Double.infinity, high = -Double.infinity, finite = 0, bad = 0
        for v in values {
            guard v.isFinite else { bad += 1; continue }
            finite += 1
            sum += v
            sumSquares += v * v
            low = Swift.min(low, v)
            high = Swift.max(high, v)
        }
        let n = Double(Swift.max(finite, 1))
        mean = sum / n
        std = Swift.max(0, sumSquares / n - mean * mean).squareRoot()
        min = finite > 0 ? low : .nan
        max = finite > 0 ? high : .nan
        nonFinite = bad
    }
}

/// One training step as the monitors see it.
public struct MonitorRecord: Codable, Equatable, Sendable {
    public var step: Int
    public var loss: Double?
    /// ℓ₂ norm of each parameter's gradient, by name.
    public var gradientNorms: [String: Double]
    public var globalGradientNorm: Double
    public var activations: [String: TensorStatistics]
    /// Non-finite elements among the gradients and activations (overflow counter).
    public var overflows: Int
}

/// Where records go.
public protocol MonitorSink: AnyObject {
    func write(_ record: MonitorRecord) throws
}

/// One JSON object per line, appended and flushed per record.
public final class JSONLinesSink: MonitorSink {
    public let path: String
    private let handle: FileHandle

    /// Creates or appends to `path`.
    public init(path: String) throws {
        self.path = path
        if !FileManager.default.fileExists(atPath: path) {
            guard FileManager.default.createFile(atPath: path, contents: nil) else {
                throw PersistenceError.io(path: path, operation: "create", errno: errno, message: String(cString: strerror(errno)))
            }
        }
        guard let handle = FileHandle(forWritingAtPath: path) else {
            throw PersistenceError.io(path: path, operation: "open", errno: errno, message: String(cString: strerror(errno)))
        }
        self.handle = handle
        handle.seekToEndOfFile()
    }

    deinit { try? handle.close() }

    public func write(_ record: MonitorRecord) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        var line = try encoder.encode(record)
        line.append(0x0A)
        try handle.write(contentsOf: line)
    }
}

/// A line of text per record, to standard output or a file handle.
public final class TextSink: MonitorSink {
    private let handle: FileHandle
    public init(_ handle: FileHandle = .standardOutput) { self.handle = handle }

    public func write(_ record: MonitorRecord) throws {
        var text = "step \(record.step)"
        if let loss = record.loss { text += String(format: " loss %.6g", loss) }
        text += String(format: " |g| %.4g", record.globalGradientNorm)
        for (name, norm) in record.gradientNorms.sorted(by: { $0.key < $1.key }) { text += String(format: " %@ %.3g", name, norm) }
        for (name, s) in record.activations.sorted(by: { $0.key < $1.key }) { text += String(format: " %@ μ %.3g σ %.3g", name, s.mean, s.std) }
        if record.overflows > 0 { text += " OVERFLOW \(record.overflows)" }
        try handle.write(contentsOf: Data((text + "\n").utf8))
    }
}

/// Computes per-parameter gradient norms, activation statistics and overflow counts each step and
/// streams them to its sinks. Computation happens outside every interpreter level (nothing is
/// recorded on a tape).
public final class TrainingMonitor {
    public var sinks: [MonitorSink]
    public private(set) var last: MonitorRecord?

    public init(sinks: [MonitorSink]) { self.sinks = sinks }

    @discardableResult
    public func record<P: ParameterCollection>(step: Int, loss: Double? = nil, gradient: P, activations: [String: Tensor] = [:]) throws -> MonitorRecord {
        try InterpreterStack.current.withoutLevels {
            var norms: [String: Double] = [:]
            var total = 0.0, overflows = 0
            for (name, g) in gradient.namedTensors where g.dtype.isFloatingPoint {
                var sum = 0.0
                for v in g.doubles { if v.isFinite { sum += v * v } else { overflows += 1 } }
                norms[name] = sum.squareRoot()
                total += sum
            }
            var stats: [String: TensorStatistics] = [:]
            for (name, a) in activations {
                let s = try TensorStatistics(a)
                overflows += s.nonFinite
                stats[name] = s
            }
            let record = MonitorRecord(step: step, loss: loss, gradientNorms: norms, globalGradientNorm: total.squareRoot(),
                                       activations: stats, overflows: overflows)
            for sink in sinks { try sink.write(record) }
            last = record
            return record
        }
    }
}
