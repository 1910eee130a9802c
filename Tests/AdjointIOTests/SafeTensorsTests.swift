import AdjointIO
import AdjointTensor
import AdjointTestSupport
import Foundation
import Testing

@Suite("safetensors files")
struct SafeTensorsTests {
    static func temporaryPath(_ name: String) -> String {
        (temporaryDirectory("safetensors") as NSString).appendingPathComponent(name)
    }

    static func sample() throws -> [String: Tensor] {
        [
            "w": try Tensor.uniform([3, 4], key: RandomKey(seed: 1)),
            "b": try Tensor.uniform([4], key: RandomKey(seed: 2), dtype: .float32),
            "h": try Tensor([1.5, -2, 65504], shape: [3]).cast(to: .float16),
            "bf": try Tensor([1, 2, 3], shape: [3]).cast(to: .bfloat16),
            "step": Tensor([Int64(42)]),
            "i": Tensor([Int32(-1), 7]),
            "mask": try Tensor([1, 0, 1], shape: [3]).cast(to: .bool),
            "scalar": Tensor(3.25),
            "empty": try Tensor.zeros([0, 2]),
        ]
    }

    @Test("every dtype round-trips bitwise through a file, with metadata; equal inputs give equal bytes")
    func roundTrip() throws {
        let tensors = try Self.sample()
        let path = Self.temporaryPath("model.safetensors")
        try SafeTensors.write(tensors, metadata: ["format": "adjoint", "step": "42"], to: path)
        let (read, metadata) = try SafeTensors.read(path)
        #expect(metadata == ["format": "adjoint", "step": "42"])
        #expect(Set(read.keys) == Set(tensors.keys))
        for (name, t) in tensors { #expect(bitwiseEqual(read[name]!, t), "\(name)") }
        #expect(try SafeTensors.encode(tensors) == SafeTensors.encode(tensors))
        let bytes = try SafeTensors.encode(tensors)
        let headerLength = Int(bytes[0]) | Int(bytes[1]) << 8
        #expect(headerLength % 8 == 0)
        // The atomic writer leaves no temporary file behind.
        let siblings = try FileManager.default.contentsOfDirectory(atPath: (path as NSString).deletingLastPathComponent)
        #expect(siblings == ["model.safetensors"])
    }

    @Test("truncated or corrupt files get errors naming the file and the offset")
    func corrupt() throws {
        let good = try SafeTensors.encode(["a": Tensor([1.0, 2.0]), "b": Tensor([Int64(3)])])
        let headerLength = Int(good[0]) | Int(good[1]) << 8
        #expect(throws: PersistenceError.truncated(path: "f", detail: "3 bytes, shorter than the 8-byte header length")) {
            try SafeTensors.decode([1, 2, 3], path: "f")
        }
        #expect(throws: PersistenceError.self) { try SafeTensors.decode(Array(good.prefix(20)), path: "f") }   // header cut
        #expect(throws: PersistenceError.self) { try SafeTensors.decode(Array(good.dropLast(4)), path: "f") }  // data cut
        #expect(throws: PersistenceError.corrupt(path: "f", offset: 8 + headerLength + 24, detail: "3 bytes after the last tensor")) {
            try SafeTensors.decode(good + [0, 0, 0], path: "f")
        }
        var badJSON = good
        badJSON[8] = UInt8(ascii: "[")
        #expect(throws: PersistenceError.corrupt(path: "f", offset: 8, detail: "the header is not a JSON object")) {
            try SafeTensors.decode(badJSON, path: "f")
        }
        func file(_ header: String, data: Int) -> [UInt8] {
            var json = Array(header.utf8)
            while json.count % 8 != 0 { json.append(0x20) }
            return withUnsafeBytes(of: UInt64(json.count).littleEndian, Array.init) + json + [UInt8](repeating: 0, count: data)
        }
        #expect(throws: PersistenceError.unsupportedDType(path: "f", tensor: "x", dtype: "C64")) {
            try SafeTensors.decode(file(#"{"x":{"dtype":"C64","shape":[1],"data_offsets":[0,8]}}"#, data: 8), path: "f")
        }
        #expect(throws: PersistenceError.self) {   // shape does not match the byte count
            try SafeTensors.decode(file(#"{"x":{"dtype":"F64","shape":[2],"data_offsets":[0,8]}}"#, data: 8), path: "f")
        }
        #expect(throws: PersistenceError.self) {   // a hole
            try SafeTensors.decode(file(#"{"x":{"dtype":"F64","shape":[1],"data_offsets":[8,16]}}"#, data: 16), path: "f")
        }
        #expect(throws: PersistenceError.self) {   // overlap
            try SafeTensors.decode(file(#"{"x":{"dtype":"F64","shape":[1],"data_offsets":[0,8]},"y":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}}"#, data: 8), path: "f")
        }
        #expect(throws: PersistenceError.io(path: "/nonexistent/dir/model.safetensors", operation: "open", errno: ENOENT,
                                            message: String(cString: strerror(ENOENT)))) {
            try SafeTensors.read("/nonexistent/dir/model.safetensors")
        }
        #expect(throws: PersistenceError.self) { try SafeTensors.read(FileManager.default.temporaryDirectory.path) }   // a directory
        #expect(throws: PersistenceError.self) { try SafeTensors.write(["a": Tensor(1.0)], to: "/nonexistent/dir/model.safetensors") }
        // Shapes whose product overflows, with offsets that would wrap to the byte count.
        for shape in ["[4611686018427387904,4]", "[9223372036854775807,2]", "[4294967296,4294967296,2]", "[2305843009213693952,4]"] {
            #expect("\(shape)") { try SafeTensors.decode(file(#"{"x":{"dtype":"F64","shape":"# + shape + #","data_offsets":[0,0]}}"#, data: 0), path: "f") }
                throws: { "\($0)".contains("overflows") }
        }
        // A bool byte that is neither 0 nor 1 is not a Bool.
        #expect { try SafeTensors.decode(file(#"{"m":{"dtype":"BOOL","shape":[3],"data_offsets":[0,3]}}"#, data: 0) + [1, 0, 7], path: "f") }
            throws: { "\($0)".contains("bool element 2 is the byte 7") && "\($0)".contains("tensor 'm'") }
    }

    @Test("files load in Python's safetensors and files it writes load here",
          .enabled(if: pythonAvailable(importing: ["safetensors", "numpy"]), "needs python3 with safetensors and numpy (or ADJOINT_PYTHON)"))
    func pythonInterop() throws {
        let python = try #require(pythonInterpreter(importing: ["safetensors", "numpy"]))
        let path = Self.temporaryPath("from-adjoint.safetensors")
        let tensors = ["w": try Tensor.uniform([2, 3], key: RandomKey(seed: 5)), "n": Tensor([Int64(7), 8])]
        try SafeTensors.write(tensors, metadata: ["who": "adjoint"], to: path)
        let back = path + ".py.safetensors"
        let script = """
            from safetensors.numpy import load_file, save_file
            from safetensors import safe_open
            t = load_file('\(path)')
            with safe_open('\(path)', 'np') as f: assert f.metadata() == {'who': 'adjoint'}, f.metadata()
            print(repr(t['w'].tolist()), t['n'].tolist(), t['w'].dtype, t['n'].dtype)
            save_file({'w2': t['w'] * 2, 'n': t['n']}, '\(back)', metadata={'who': 'python'})
            """
        let result = try runProcess([python, "-c", script])
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains("float64") && result.output.contains("int64") && result.output.contains("[7, 8]"))
        let (fromPython, metadata) = try SafeTensors.read(back)
        #expect(metadata == ["who": "python"])
        #expect(fromPython["w2"]!.doubles == (try tensors["w"]! * 2).doubles)
        #expect(bitwiseEqual(fromPython["n"]!, tensors["n"]!))
    }
}
