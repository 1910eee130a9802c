import Foundation

/// Iteration latency of a decoder on one GPU, fitted to a measured cost table
/// (`../shared/data/serving/llm-cost-h200.csv`: `phase,model,batch,tokens,context,latency_ms`).
///
/// - Prefill: the `prefill` rows of the model (one sequence of `tokens` prompt tokens, no cached
///   context), interpolated piecewise-linearly in the token count; below the first row, the first
///   row's latency (launch-bound); beyond the last, the last segment's slope.
/// - Decode: a least-squares fit over every `decode` row of the model,
///   `latency = c0 + c1·batch + c2·(batch·context)/1000` (launch overhead, per-sequence work, KV
///   reads).
/// - A mixed iteration (chunked prefill beside decodes) costs the decode part plus what the prefill
///   chunk adds above the launch-bound minimum: `decode(b, C) + prefill(p) − prefill(0)`.
///
/// KV capacity: the GPU's memory less the weights, over the bytes per token (the constants the
/// table's README gives: 139 GiB, 2 GB / 14 GB of bf16 weights, 32,768 / 131,072 bytes per token),
/// in blocks of ``blockTokens``.
public struct ServingCostModel: Sendable, Equatable {
    /// The two model shapes of the table.
    public enum Model: String, Sendable, CaseIterable {
        case llama1b = "1b", llama8b = "8b"
        /// The `model` column's value.
        public var tableName: String { self == .llama1b ? "llama-1b-shape" : "llama-8b-shape" }
        public var kvBytesPerToken: Int { self == .llama1b ? 32_768 : 131_072 }
        public var weightBytes: Int { self == .llama1b ? 2_000_000_000 : 14_000_000_000 }
    }

    /// Tokens per KV-cache block.
    public static let blockTokens = 16
    /// The GPU's memory (an H200).
    public static let gpuBytes = 139 << 30

    public let model: Model
    /// `(tokens, milliseconds)` of the prefill rows, by token count.
    public let prefillRows: [(tokens: Int, ms: Double)]
    /// `c0, c1, c2` of the decode fit.
    public let decodeCoefficients: (c0: Double, c1: Double, c2: Double)
    /// How many rows of each phase were used.
    public let rowsUsed: (prefill: Int, decode: Int)
    /// KV-cache blocks that fit beside the weights (before `memoryFraction`).
    public let kvBlocks: Int

    public static func == (a: Self, b: Self) -> Bool {
        a.model == b.model && a.prefillRows.map(\.tokens) == b.prefillRows.map(\.tokens) && a.prefillRows.map(\.ms) == b.prefillRows.map(\.ms)
            && a.decodeCoefficients == b.decodeCoefficients && a.kvBlocks == b.kvBlocks
    }

    /// Fits the model's rows of the table at `path`.
    public static func fitted(table path: String, model: Model) throws -> ServingCostModel {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw ServingTraceError.io(path: path, detail: "cannot read the cost table: \(error.localizedDescription)")
        }
        guard text.utf8.count <= 1 << 20 else { throw ServingTraceError.invalid(path: path, line: 0, field: "file", detail: "larger than 1 MiB") }
        var prefill: [(Int, Double)] = [], decode: [(batch: Double, context: Double, ms: Double)] = []
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespacesAndNewlines)
            if line.isEmpty { continue }
            let fields = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            func bad(_ field: String, _ detail: String) -> ServingTraceError { .invalid(path: path, line: index + 1, field: field, detail: detail) }
            if index == 0 {
                guard fields == ["phase", "model", "batch", "tokens", "context", "latency_ms"] else {
                    throw bad("header", "expected phase,model,batch,tokens,context,latency_ms")
                }
                continue
            }
            guard fields.count == 6 else { throw bad("line", "expected 6 fields, got \(fields.count)") }
            guard fields[1] == model.tableName else { continue }
            guard let batch = Int(fields[2]), (1 ... 1 << 16).contains(batch) else { throw bad("batch", "not an integer in 1 ... 65536") }
            guard let tokens = Int(fields[3]), (1 ... maximumTokens).contains(tokens) else { throw bad("tokens", "not an integer in 1 ... \(maximumTokens)") }
            guard let context = Int(fields[4]), (0 ... maximumTokens).contains(context) else { throw bad("context", "not an integer in 0 ... \(maximumTokens)") }
            guard let ms = Double(fields[5]), ms.isFinite, ms > 0, ms < 1e7 else { throw bad("latency_ms", "not a positive finite time") }
            switch fields[0] {
            case "prefill": prefill.append((tokens, ms))
            case "decode": decode.append((Double(batch), Double(context), ms))
            default: throw bad("phase", "'\(fields[0].prefix(20))' is neither prefill nor decode")
            }
        }
        prefill.sort { $0.0 < $1.0 }
        guard prefill.count >= 2, Set(prefill.map(\.0)).count == prefill.count else {
            throw ServingTraceError.invalid(path: path, line: 0, field: "prefill rows", detail: "\(model.tableName) needs at least two prefill rows of distinct token counts")
        }
        // Least squares on [1, b, b·c/1000] by the normal equations (3 × 3, solved by Cramer's rule).
        var m = [[Double]](repeating: [0, 0, 0], count: 3), v = [0.0, 0, 0]
        for row in decode {
            let x = [1, row.batch, row.batch * row.context / 1000]
            for i in 0..<3 {
                v[i] += x[i] * row.ms
                for j in 0..<3 { m[i][j] += x[i] * x[j] }
            }
        }
        func det(_ a: [[Double]]) -> Double {
            a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1]) - a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0])
                + a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0])
        }
        let d = det(m)
        guard decode.count >= 3, d.isFinite, Swift.abs(d) > 1e-9 else {
            throw ServingTraceError.invalid(path: path, line: 0, field: "decode rows", detail: "\(model.tableName) needs at least three decode rows that vary in batch and context")
        }
        let c = (0..<3).map { k -> Double in
            var a = m
            for i in 0..<3 { a[i][k] = v[i] }
            return det(a) / d
        }
        let blocks = (gpuBytes - model.weightBytes) / (model.kvBytesPerToken * blockTokens)
        return ServingCostModel(model: model, prefillRows: prefill.map { ($0.0, $0.1) }, decodeCoefficients: (c[0], c[1], c[2]),
                                rowsUsed: (prefill.count, decode.count), kvBlocks: blocks)
    }

    static let maximumTokens = 1 << 21

    /// Milliseconds to prefill `tokens` tokens of one sequence.
    public func prefillMs(tokens: Int) -> Double {
        let rows = prefillRows
        if tokens <= rows[0].tokens { return rows[0].ms }
        var upper = rows.firstIndex { $0.tokens >= tokens } ?? rows.count - 1
        if upper == 0 { upper = 1 }
        let (a, b) = (rows[upper - 1], rows[upper])
        let slope = (b.ms - a.ms) / Double(b.tokens - a.tokens)
        return Swift.max(rows[0].ms, a.ms + slope * Double(tokens - a.tokens))
    }

    /// Milliseconds of one decode iteration of `batch` sequences holding `contextTokens` cached
    /// tokens in all (at least the fit's value at one sequence, so it never goes below zero).
    public func decodeMs(batch: Int, contextTokens: Int) -> Double {
        let (c0, c1, c2) = decodeCoefficients
        return Swift.max(c0 + c1, c0 + c1 * Double(batch) + c2 * Double(contextTokens) / 1000)
    }

    /// Milliseconds of an iteration that prefills `prefillTokens` (in chunks of any sequences) and
    /// decodes one token for each of `decodeBatch` sequences holding `decodeContext` tokens.
    public func iterationMs(prefillTokens: Int, decodeBatch: Int, decodeContext: Int) -> Double {
        if decodeBatch == 0 { return prefillTokens == 0 ? 0 : prefillMs(tokens: prefillTokens) }
        let decode = decodeMs(batch: decodeBatch, contextTokens: decodeContext)
        return prefillTokens == 0 ? decode : decode + prefillMs(tokens: prefillTokens) - prefillRows[0].ms
    }
}
