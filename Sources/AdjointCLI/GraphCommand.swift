import Adjoint
import AdjointExamples
import ArgumentParser
import Foundation

/// `adjoint graph`: export, print and verify serialized IR graphs.
public struct GraphCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "graph",
        abstract: "Export a traced program as a versioned IR file, print one, or verify one.",
        subcommands: [Export.self, Print.self, Verify.self]
    )
    public init() {}

    public struct Export: ParsableCommand {
        public static let configuration = CommandConfiguration(
            abstract: "Trace one step of the thermal model (state, forcing and parameters as arguments) into a graph file.")
        @Argument(help: "The file to write.")
        var output: String
        public init() {}

        public func run() throws {
            let model = ThermalModel()
            let s = model.initialState
            let n = s.tensors.count
            let (bundle, _) = try traceGraph({ a in
                try model.step.body(s.replacingTensors(with: Array(a[0..<n])), a[n], a[n + 1]).state.tensors
            }, at: s.tensors + [model.forcing(0), model.nominalParameters])
            try bundle.write(to: output)
            print("wrote \(output): \(bundle.graph.nodes.count) nodes, \(bundle.captures.count) captures, \(bundle.graph.inputs.count - bundle.captures.count) arguments")
        }
    }

    public struct Print: ParsableCommand {
        public static let configuration = CommandConfiguration(abstract: "Print a graph file's program.")
        @Argument(help: "A graph file (from `adjoint graph export` or GraphBundle.write).")
        var file: String
        public init() {}
        public func run() throws { print(try GraphBundle.read(file).graph.description) }
    }

    public struct Verify: ParsableCommand {
        public static let configuration = CommandConfiguration(
            abstract: "Check a graph file: format version, checksum, structure, captures; then run it on random arguments.")
        @Argument(help: "A graph file.")
        var file: String
        public init() {}

        public func run() throws { print(try Self.report(file)) }

        static func report(_ file: String) throws -> String {
            let bundle = try GraphBundle.read(file)
            let arguments = try bundle.graph.inputs.filter { $0.role == .argument }.enumerated().map { i, input -> Tensor in
                let t = try Tensor.uniform(input.type.shape, key: RandomKey(seed: 11, stream: UInt64(i)), low: 0.5, high: 1.5,
                                           dtype: input.type.dtype.isFloatingPoint ? input.type.dtype : .float64)
                return input.type.dtype.isFloatingPoint ? t : try t.cast(to: input.type.dtype)
            }
            let outputs = try bundle.execute(arguments)
            let first = try bundle.execute(arguments)
            func identical(_ x: [Tensor], _ y: [Tensor]) -> Bool {
                zip(x, y).allSatisfy { a, b in a.valueType == b.valueType && memcmp(a.rawPointer, b.rawPointer, a.elementCount * a.dtype.byteSize) == 0 }
            }
            let deterministic = identical(outputs, first)
            let program = try bundle.compiled()
            let compiledMatches = identical(outputs, try program(arguments))
            return "\(file): OK — format version \(GraphCodec.currentVersion), checksum verified, \(bundle.graph.nodes.count) nodes, "
                + "\(bundle.captures.count) captures; ran on random arguments: outputs \(outputs.map { "\($0.valueType)" }.joined(separator: ", "))"
                + (deterministic ? ", bitwise identical on a second run" : ", NOT identical on a second run")
                + "; compiled (\(program.statistics)): " + (compiledMatches ? "bitwise identical to the interpreter" : "NOT identical to the interpreter")
        }
    }
}
