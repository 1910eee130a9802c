import AdjointFuzzTargets
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// `adjoint-fuzz TARGET [libFuzzer options] [CORPUS…]`.
///
/// Built with `swift build --sanitize=fuzzer --sanitize=address --product adjoint-fuzz` it hands
/// control to libFuzzer (`LLVMFuzzerRunDriver`) with the named target; built without the fuzzer
/// runtime it replays the files and directories given through the target once each, so the corpus
/// also runs as a regression suite. `scripts/fuzz` runs every target.
@main
struct FuzzDriver {
    nonisolated(unsafe) static var target = FuzzTarget.safetensors
    nonisolated(unsafe) static var scratch = ""

    static func main() {
        var arguments = CommandLine.arguments
        guard arguments.count >= 2, let target = FuzzTarget(rawValue: arguments[1]) else {
            let names = FuzzTarget.allCases.map(\.rawValue).joined(separator: ", ")
            FileHandle.standardError.write(Data("usage: adjoint-fuzz TARGET [libFuzzer options] [CORPUS…]; targets: \(names)\n".utf8))
            exit(2)
        }
        Self.target = target
        arguments.remove(at: 1)
        scratch = FileManager.default.temporaryDirectory.appendingPathComponent("adjoint-fuzz-\(getpid())").path
        try? FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        typealias Callback = @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
        typealias RunDriver = @convention(c) (UnsafeMutablePointer<Int32>, UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>, Callback) -> Int32
        if let symbol = dlsym(nil, "LLVMFuzzerRunDriver") {   // nil: RTLD_DEFAULT, the whole process
            let runDriver = unsafeBitCast(symbol, to: RunDriver.self)
            var argc = Int32(arguments.count)
            var cStrings: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
            let status = cStrings.withUnsafeMutableBufferPointer { buffer -> Int32 in
                var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = buffer.baseAddress
                return runDriver(&argc, &argv) { data, size in
                    FuzzDriver.target.run(Array(UnsafeBufferPointer(start: data, count: size)), scratch: FuzzDriver.scratch)
                    return 0
                }
            }
            exit(status)
        }
        // No fuzzer runtime: replay the corpus.
        var files: [String] = []
        for path in arguments.dropFirst() where !path.hasPrefix("-") {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { continue }
            if isDirectory.boolValue {
                files += ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted().map { (path as NSString).appendingPathComponent($0) }
            } else {
                files.append(path)
            }
        }
        for file in files {
            guard let bytes = FileManager.default.contents(atPath: file) else { continue }
            target.run(Array(bytes), scratch: scratch)
        }
        print("\(target.rawValue): replayed \(files.count) inputs")
    }
}
