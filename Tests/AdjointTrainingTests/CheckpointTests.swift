import Adjoint
import AdjointTestSupport
import Foundation
import Testing

@Suite("Checkpoints")
struct CheckpointTests {
    struct Net: ParameterCollection {
        var w: Tensor, b: Tensor
        mutating func visitTensors(_ visit: (String, inout Tensor) throws -> Void) rethrows {
            try visit("w", &w); try visit("b", &b)
        }
    }

    static func trained(steps: Int = 3) throws -> (Net, Adam) {
        var net = Net(w: try Tensor.uniform([3, 2], key: RandomKey(seed: 1), dtype: .float32), b: try Tensor.zeros([2], dtype: .float32))
        var adam = try Adam(learningRate: .constant(0.01))
        for _ in 0..<steps {
            let g = try gradient(at: net) { n in try (n.w.sum(axes: [0]) * n.b + n.w * n.w).sum() }
            try adam.update(&net, along: g)
        }
        return (net, adam)
    }

    static func sample() throws -> Checkpoint {
        let (net, adam) = try trained()
        return Checkpoint(model: net, optimizer: adam, random: ["dropout": RandomStream(key: RandomKey(seed: 9), counter: 77)],
                          data: DataPosition(epoch: 2, batch: 5), extra: ["ema": try Tensor.ones([4])],
                          run: .current(seeds: ["data": 1]), metadata: ["note": "x"])
    }

    @Test("a checkpoint round-trips bitwise: tensors, manifest, optimizer state")
    func roundTrip() throws {
        let checkpoint = try Self.sample()
        let path = (temporaryDirectory("checkpoint") as NSString).appendingPathComponent("c.safetensors")
        try checkpoint.write(to: path)
        let back = try Checkpoint.read(path)
        #expect(back.manifest == checkpoint.manifest)
        #expect(Set(back.tensors.keys) == ["model/w", "model/b", "optimizer/m.w", "optimizer/m.b", "optimizer/v.w", "optimizer/v.b", "extra/ema"])
        for (name, t) in checkpoint.tensors { #expect(bitwiseEqual(back.tensors[name]!, t), "\(name)") }
        #expect(back.manifest.step == 3 && back.manifest.data == DataPosition(epoch: 2, batch: 5))
        #expect(back.manifest.random["dropout"]?.counter == 77)
        #expect(back.manifest.run.seeds == ["data": 1] && back.manifest.run.policy == .strict)
    }

    @Test("restoring continues training exactly as if never interrupted")
    func restoreContinues() throws {
        var (net, adam) = try Self.trained(steps: 3)
        let checkpoint = try Checkpoint.decode(Checkpoint(model: net, optimizer: adam).encoded())
        var fresh = try Self.trained(steps: 0)
        try checkpoint.restore(model: &fresh.0, optimizer: &fresh.1)
        #expect(fresh.1.step == 3)
        for _ in 0..<2 {
            let g1 = try gradient(at: net) { n in try (n.w * n.w).sum() }
            try adam.update(&net, along: g1)
            let g2 = try gradient(at: fresh.0) { n in try (n.w * n.w).sum() }
            try fresh.1.update(&fresh.0, along: g2)
        }
        #expect(zip(net.tensors, fresh.0.tensors).allSatisfy(bitwiseEqual))
    }

    @Test("a model or optimizer that does not fit is refused and left untouched")
    func incompatible() throws {
        let checkpoint = try Self.sample()
        var (net, adam) = try Self.trained(steps: 0)
        var sgd = try SGD(learningRate: .constant(0.01))
        #expect(throws: CheckpointError.self) { try checkpoint.restore(model: &net, optimizer: &sgd) }
        var otherRate = try Adam(learningRate: .constant(0.02))
        #expect(throws: CheckpointError.self) { try checkpoint.restore(model: &net, optimizer: &otherRate) }
        var wide = Net(w: try Tensor.zeros([4, 2], dtype: .float32), b: try Tensor.zeros([2], dtype: .float32))
        let before = wide.tensors
        #expect(throws: CheckpointError.self) { try checkpoint.restore(model: &wide, optimizer: &adam) }
        #expect(zip(before, wide.tensors).allSatisfy(bitwiseEqual) && adam.step == 0)
        var double = Net(w: try Tensor.zeros([3, 2]), b: try Tensor.zeros([2], dtype: .float32))
        #expect(throws: CheckpointError.self) { try checkpoint.restore(model: &double, optimizer: &adam) }
    }

    @Test("damage is detected: flipped byte, truncation, foreign file, future version")
    func damage() throws {
        let checkpoint = try Self.sample()
        let bytes = try checkpoint.encoded()
        // A flipped bit in the tensor data.
        var flipped = bytes
        flipped[bytes.count - 3] ^= 0x10
        #expect { try Checkpoint.decode(flipped, path: "f") } throws: { ($0 as? CheckpointError).map { if case .checksumMismatch(path: "f", _, _) = $0 { true } else { false } } ?? false }
        // Truncated anywhere: a clear error, never a crash.
        for cut in [0, 5, 8, 100, bytes.count / 2, bytes.count - 1] {
            #expect(throws: (any Error).self) { try Checkpoint.decode(Array(bytes[..<cut]), path: "t") }
        }
        #expect(throws: PersistenceError.self) { try Checkpoint.decode(Array(bytes[..<(bytes.count - 1)]), path: "t") }
        // A plain safetensors file is not a checkpoint.
        #expect(throws: CheckpointError.notACheckpoint(path: "p", detail: "the safetensors metadata has no 'adjoint.manifest' entry")) {
            try Checkpoint.decode(SafeTensors.encode(["w": Tensor(1.0)]), path: "p")
        }
        // A newer format version is named as such, before anything else is decoded.
        var future = checkpoint
        future.manifest.formatVersion = CheckpointManifest.currentVersion + 1
        #expect(throws: CheckpointError.unsupportedVersion(path: "v", found: 2, supported: 1)) { try Checkpoint.decode(future.encoded(), path: "v") }
        // A manifest whose tensor table disagrees with the file.
        var lying = checkpoint
        lying.manifest.tensors["model/w"]?.shape = [6]
        #expect { try Checkpoint.decode(lying.encoded(), path: "m") } throws: { ($0 as? CheckpointError).map { if case .manifestMismatch = $0 { true } else { false } } ?? false }
        #expect("\(CheckpointError.unsupportedVersion(path: "v", found: 2, supported: 1))".contains("newer than this build reads"))
    }

    @Test("the store keeps the newest, skips damaged files with a report, and cleans up dead writers' temporaries")
    func store() throws {
        let dir = temporaryDirectory("store")
        let store = try CheckpointStore(directory: dir, keep: 2)
        #expect(try store.latest() == nil)
        var (net, adam) = try Self.trained(steps: 0)
        for _ in 0..<4 {
            let g = try gradient(at: net) { n in try (n.w * n.w).sum() }
            try adam.update(&net, along: g)
            try store.save(Checkpoint(model: net, optimizer: adam))
        }
        #expect(try store.steps() == [3, 4])
        // Damage the newest: latest() falls back to step 3 and says why.
        var newest = try AtomicFile.read(store.path(step: 4))
        newest[newest.count - 1] ^= 1
        try AtomicFile.write(newest, to: store.path(step: 4))
        let loaded = try #require(try store.latest())
        #expect(loaded.checkpoint.manifest.step == 3 && loaded.rejected.map(\.path) == [store.path(step: 4)])
        #expect(loaded.rejected.first?.error is CheckpointError)
        // Every file damaged: the newest one's error.
        try AtomicFile.write([1, 2, 3], to: store.path(step: 3))
        #expect(throws: (any Error).self) { try store.latest() }
        // A temporary of a writer that no longer exists is removed on open; a live one's is kept.
        let dead = (dir as NSString).appendingPathComponent("checkpoint-0000000009.safetensors.tmp-999999999")
        let live = (dir as NSString).appendingPathComponent("checkpoint-0000000009.safetensors.tmp-\(getpid())")
        try AtomicFile.write([0], to: dead)
        try AtomicFile.write([0], to: live)
        _ = try CheckpointStore(directory: dir)
        #expect(!FileManager.default.fileExists(atPath: dead) && FileManager.default.fileExists(atPath: live))
        #expect(throws: TrainingError.self) { try CheckpointStore(directory: dir, keep: 0) }
        // Opening creates nothing; the first save creates the directory, not its missing parents.
        let missing = (temporaryDirectory("store-missing") as NSString).appendingPathComponent("parent/store")
        let lazy = try CheckpointStore(directory: missing)
        #expect(try lazy.latest() == nil && lazy.steps().isEmpty)
        #expect(!FileManager.default.fileExists(atPath: (missing as NSString).deletingLastPathComponent))
        let checkpoint = Checkpoint(model: net, optimizer: adam)
        #expect(throws: PersistenceError.self) { try lazy.save(checkpoint) }
        #expect(!FileManager.default.fileExists(atPath: (missing as NSString).deletingLastPathComponent))
        let fresh = (temporaryDirectory("store-fresh") as NSString).appendingPathComponent("store")
        try CheckpointStore(directory: fresh).save(checkpoint)
        #expect(try CheckpointStore(directory: fresh).steps() == [4])
    }

    @Test("checkpoints load in Python's safetensors with the manifest in the metadata",
          .enabled(if: pythonAvailable(importing: ["safetensors", "numpy"]), "needs python3 with safetensors and numpy (or ADJOINT_PYTHON)"))
    func pythonLoad() throws {
        let python = try #require(pythonInterpreter(importing: ["safetensors", "numpy"]))
        let path = (temporaryDirectory("checkpoint-py") as NSString).appendingPathComponent("c.safetensors")
        try Self.sample().write(to: path)
        let script = """
            import json
            from safetensors import safe_open
            with safe_open('\(path)', 'np') as f:
                m = json.loads(f.metadata()['adjoint.manifest'])
                print(m['format'], m['formatVersion'], m['step'], sorted(f.keys())[0], f.get_tensor('model/w').dtype)
            """
        let result = try runProcess([python, "-c", script])
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.hasPrefix("adjoint.checkpoint 1 3 extra/ema float32"), "\(result.output)")
    }

    @Test("the run manifest names the build, BLAS, CPU, OS, policy and seeds")
    func runManifest() throws {
        let manifest = ExecutionPolicy.with(.bestEffort) { RunManifest.current(seeds: ["data": 3]) }
        #expect(manifest.adjointVersion == AdjointVersion.current && manifest.swiftVersion.hasPrefix("Swift"))
        #expect(manifest.blas.contains("OpenBLAS") && manifest.blasThreads == 1 && manifest.kernelThreads == Parallelism.threadCount)
        #expect(manifest.cpuModel != "unknown" && !manifest.cpuFlags.isEmpty && manifest.operatingSystem.contains("Linux"))
        #expect(manifest.policy == .bestEffort && manifest.seeds == ["data": 3] && manifest.mixedPrecision == nil)
        let half = try MixedPrecision.with(.bfloat16) { RunManifest.current() }
        #expect(half.mixedPrecision == "bf16" && half.differences(from: manifest).contains("mixedPrecision"))
        var other = manifest
        other.policy = .strict
        other.startedAt = "later"
        #expect(manifest.differences(from: other) == ["policy"])
        let path = (temporaryDirectory("manifest") as NSString).appendingPathComponent("run.json")
        try manifest.write(to: path)
        #expect(try JSONDecoder().decode(RunManifest.self, from: Data(AtomicFile.read(path))) == manifest)
    }
}
