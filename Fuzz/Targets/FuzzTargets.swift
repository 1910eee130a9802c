import Adjoint
import Foundation

/// The parsers that read untrusted bytes, each as a function of one input, for libFuzzer
/// (`adjoint-fuzz`) and for the corpus regression test. A target returns normally for every input:
/// valid ones are parsed (and, where it exists, run through the next stage: verification, planning,
/// a short simulation), invalid ones throw a typed error, which is caught. Anything else — a trap,
/// a sanitizer report, a hang — is a bug.
public enum FuzzTarget: String, CaseIterable, Sendable {
    case oracleGeneral, zstd, csv, text, safetensors, cacheModel, checkpoint, graphBundle, eventLog, schedule, cacheSize
    case servingTrace, costTable

    /// The file name a target writes its input to when its parser reads files (the extension
    /// selects the format).
    var fileName: String? {
        switch self {
        case .oracleGeneral: return "input.oracleGeneral.bin"
        case .zstd: return "input.oracleGeneral.bin.zst"
        case .csv: return "input.csv"
        case .text: return "input.txt"
        case .cacheModel: return "input.safetensors"
        case .eventLog: return "input.adjlog"
        case .servingTrace: return "input.trace"
        case .costTable: return "llm-cost-h200.csv"
        case .safetensors, .checkpoint, .graphBundle, .schedule, .cacheSize: return nil
        }
    }

    /// Runs one input; typed errors are the expected answer to bad input and are swallowed.
    public func run(_ bytes: [UInt8], scratch: String) {
        do { try body(bytes, scratch: scratch) } catch {}
    }

    /// Bounds what a valid input may make a target do, so each execution stays short.
    static let maximumRequests = 4096

    private func body(_ bytes: [UInt8], scratch: String) throws {
        var path = ""
        if let fileName {
            path = (scratch as NSString).appendingPathComponent(fileName)
            try AtomicFile.write(bytes, to: path)
            if FileManager.default.fileExists(atPath: path + ".json") { try FileManager.default.removeItem(atPath: path + ".json") }
        }
        switch self {
        case .oracleGeneral, .zstd:
            var reader = try OracleGeneralReader(path: path)
            try simulate(try reader.readAll(limit: Self.maximumRequests))
        case .csv:
            // The first byte picks the options, so the fuzzer explores them too.
            let header = (bytes.first ?? 0) & 1 == 1
            let columns = CSVTraceReader.Columns(id: .index(Int((bytes.first ?? 0) >> 1 & 3)),
                                                 time: (bytes.first ?? 0) & 8 == 0 ? nil : .index(1),
                                                 size: (bytes.first ?? 0) & 16 == 0 ? nil : .index(2))
            var reader = try CSVTraceReader(path: path, columns: columns, hasHeader: header)
            try simulate(try reader.readAll(limit: Self.maximumRequests))
        case .text:
            var reader = try TextTraceReader(path: path)
            try simulate(try reader.readAll(limit: Self.maximumRequests))
        case .safetensors:
            _ = try SafeTensors.decode(bytes, path: "fuzz")
        case .cacheModel:
            var policy = try CacheModel.read(path).deployed(capacity: 4, mode: .unit)
            var requests = (0..<64).map { CacheRequest(time: Int64($0), id: UInt64($0 % 9), size: 1) }
            NextAccess.annotate(&requests)
            _ = CacheSimulation.run(&policy, requests: requests, mode: .unit)
        case .checkpoint:
            _ = try Checkpoint.decode(bytes, path: "fuzz")
        case .graphBundle:
            let bundle = try GraphBundle.decode(bytes, path: "fuzz")
            _ = try bundle.compiled()
        case .eventLog:
            let log = try FileEventLog(readingAt: path)
            defer { try? log.close() }
            _ = try log.events(0..<Swift.min(log.count, 4096))
            if let trajectory = try? RecordedTrajectory(log: log) { _ = trajectory.steps }
        case .schedule:
            let schedule = try CheckpointSchedule.parse(String(decoding: bytes, as: UTF8.self))
            _ = try schedule.cost(steps: 64)
        case .servingTrace:
            // The first byte picks the format and the policy, so the fuzzer explores them too.
            let first = bytes.first ?? 0
            let format: ServingTraceFormat = first & 1 == 0 ? .azureCSV : .mooncakeJSONL
            let requests = try ServingTraceReader.readAll(path: path, format: format, load: Double(1 + first >> 5), limit: 256)
            let table = (scratch as NSString).appendingPathComponent("serving-cost.csv")
            try AtomicFile.write(Array(Self.servingTable.utf8), to: table)
            let cost = try ServingCostModel.fitted(table: table, model: .llama8b)
            let simulator = try ServingSimulator(cost: cost, configuration: ServingConfiguration(kvBlocks: 1 << 12, prefixCacheBlocks: first & 2 == 0 ? 0 : 16))
            _ = try simulator.run(requests, policy: SchedulingPolicy.classical[Int(first >> 2) % SchedulingPolicy.classical.count])
        case .costTable:
            for model in ServingCostModel.Model.allCases {
                guard let cost = try? ServingCostModel.fitted(table: path, model: model) else { continue }
                _ = cost.iterationMs(prefillTokens: 4096, decodeBatch: 64, decodeContext: 1 << 20)
                _ = cost.prefillMs(tokens: 1 << 21)
            }
        case .cacheSize:
            let text = String(decoding: bytes.dropFirst(8), as: UTF8.self)
            let footprint = bytes.prefix(8).reduce(Int64(0)) { $0 << 8 | Int64($1) }
            _ = try CacheSize.parse(text, footprint: footprint)
        }
    }

    /// A small cost table in the measured table's format, for the serving target.
    static let servingTable = """
        phase,model,batch,tokens,context,latency_ms
        prefill,llama-8b-shape,1,64,0,11
        prefill,llama-8b-shape,1,4096,0,105
        decode,llama-8b-shape,1,1,512,7.6
        decode,llama-8b-shape,16,1,8192,9.6
        decode,llama-8b-shape,64,1,2048,9.6
        """

    private func simulate(_ requests: [CacheRequest]) throws {
        guard !requests.isEmpty else { return }
        var annotated = requests
        NextAccess.annotate(&annotated)
        for kind in PolicyKind.allCases {
            _ = CacheSimulation.run(kind, capacity: 8, requests: annotated, mode: .unit)
            _ = CacheSimulation.run(kind, capacity: 1 << 20, requests: annotated, mode: .bytes)
        }
    }
}
