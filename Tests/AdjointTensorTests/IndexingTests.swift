import Adjoint
import AdjointTestSupport
import Testing

/// NumPy-style subscripts, `takeAlong`, `gatherND`, `unsqueezed` and `x.at[…].add`.
@Suite("Indexing: subscripts, point indexing and indexed updates")
struct IndexingTests {
    /// `[[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]`.
    static func grid() throws -> Tensor { try Tensor.arange(0, 12).reshaped([3, 4]) }
    static func ints(_ values: [Int64], _ shape: [Int]? = nil) throws -> Tensor { try Tensor(values, shape: shape ?? [values.count]) }

    @Test("integers, ranges from either end, strides and new axes select as NumPy does")
    func basic() throws {
        let x = try Self.grid()
        #expect(try x[1].doubles == [4, 5, 6, 7] && x[1].shape == [4])
        #expect(try x[-1].doubles == [8, 9, 10, 11])
        #expect(try x[1, -2].shape == [] && x[1, -2].item() == 6)
        #expect(try x[..<(-1)].shape == [2, 4] && x[..<(-1)].doubles == Array(0..<8).map(Double.init))
        #expect(try x[(-2)...].doubles == Array(4..<12).map(Double.init))
        #expect(try x[.all, 1...2].doubles == [1, 2, 5, 6, 9, 10])
        #expect(try x[.all, ...(-2)].doubles == [0, 1, 2, 4, 5, 6, 8, 9, 10])
        #expect(try x[.slice(1, -1)].doubles == [4, 5, 6, 7])
        #expect(try x[.all, .slice(step: 2)].doubles == [0, 2, 4, 6, 8, 10])
        #expect(try x[.slice(step: -1), 0].doubles == [8, 4, 0])
        #expect(try x[0, .slice(3, 0, step: -2)].doubles == [3, 1])
        #expect(try x[.all, .slice(-1, nil, step: -1)][0].doubles == [3, 2, 1, 0])
        #expect(try x[.newAxis].shape == [1, 3, 4])
        #expect(try x[.all, .newAxis].shape == [3, 1, 4])
        #expect(try x[1, .newAxis].shape == [1, 4])
        #expect(try x[0..<0].shape == [0, 4])
        #expect(try x.unsqueezed(axis: -1).shape == [3, 4, 1])
        #expect(try x.unsqueezed(axis: 0).squeezed(axis: 0).shape == [3, 4])
        // The range API of `slice` takes negative bounds too.
        #expect(try x.slice([-2 ..< -1]).doubles == [4, 5, 6, 7])
    }

    @Test("bounds that do not fit name the shape and the range asked for")
    func outOfBounds() throws {
        let x = try Self.grid()
        #expect(throws: TensorError.sliceOutOfBounds(op: "subscript", shape: [3, 4], axis: 1, requested: "0..<5")) { try x[.all, 0..<5] }
        #expect(throws: TensorError.sliceOutOfBounds(op: "layout.slice", shape: [3, 4], axis: 0, requested: "1..<7")) { try x.slice([1..<7]) }
        #expect(throws: TensorError.indexOutOfRange(op: "subscript", index: 3, bound: 3, position: "axis 0 of a tensor of shape [3,4]")) { try x[3] }
        #expect(throws: TensorError.self) { try x[-4] }
        #expect(throws: TensorError.self) { try x[.slice(step: 0)] }
        #expect(throws: TensorError.self) { try x[0, 0, 0] }
        do {
            _ = try x[.all, 2..<6]
            Issue.record("no error")
        } catch {
            let text = "\(error)"
            #expect(text.contains("2..<6") && text.contains("[3,4]") && text.contains("4 elements"), "\(text)")
        }
        do {
            _ = try Tensor.concat([Tensor(1.0), Tensor(2.0)])
            Issue.record("no error")
        } catch {
            #expect("\(error)".contains("use stack"), "\(error)")
        }
    }

    @Test("hostile bounds and steps are typed errors or exact selections, never a trap", arguments: [
        (1, nil, Int.max), (nil, nil, Int.min), (Int.min, Int.max, 1), (Int.max, Int.min, -1),
        (Int.min, nil, -1), (-1, Int.min, Int.min + 1), (0, 4, Int.max - 1), (3, nil, Int.min),
    ] as [(Int?, Int?, Int)])
    func hostile(_ from: Int?, _ to: Int?, _ step: Int) throws {
        let x = try Self.grid()
        do {
            let y = try x[.all, .slice(from, to, step: step)]
            #expect(y.shape[0] == 3 && y.shape[1] <= 4)
        } catch is TensorError {}
    }

    @Test("hostile integers in every entry kind")
    func hostileIntegers() throws {
        let x = try Self.grid()
        for i in [Int.min, Int.max, Int.min + 1, Int.max - 1, -5, 4] {
            #expect(throws: TensorError.self) { try x[.all, i] }
            #expect(throws: TensorError.self) { try x.unsqueezed(axis: i) }
            #expect(throws: TensorError.self) { try x[Tensor([Int64(truncatingIfNeeded: i)])] }
        }
        #expect(throws: TensorError.self) { try x[...Int.max] }
        #expect(throws: TensorError.self) { try x[Int.max...] }
        #expect(throws: TensorError.self) { try x[..<Int.min] }
        #expect(throws: TensorError.self) { try x[Int.min...(-1)] }
        #expect(try x[.slice(1, nil, step: .max)].shape == [1, 4] && x[.slice(nil, nil, step: .min)].shape == [1, 4])
        #expect(throws: TensorError.self) { try x.takeAlong(Tensor([Int64.min, 0, 0], shape: [3, 1]), axis: 1) }
        #expect(throws: TensorError.self) { try x.gatherND(Tensor([Int64.max, 0], shape: [1, 2])) }
    }

    @Test("integer tensors pick points: z[rows, labels], takeAlong and gatherND")
    func points() throws {
        let z = try Self.grid()
        let rows = try Tensor.arange(0, 3, dtype: .int64), labels = try Self.ints([2, 0, -1])
        #expect(try z[rows, labels].doubles == [2, 4, 11])
        #expect(try z[labels].shape == [3, 4] && z[labels].doubles.prefix(4) == [8, 9, 10, 11])
        #expect(try z[rows, labels.cast(to: .int32)].doubles == [2, 4, 11])
        // Broadcasting index tensors: a 3×1 column against a row of 2 picks a 3×2 block.
        #expect(try z[rows.reshaped([3, 1]), Self.ints([0, 3])].doubles == [0, 3, 4, 7, 8, 11])
        // Remaining axes after the points follow the basic entries.
        #expect(try z[Self.ints([2, 0]), 1..<3].doubles == [9, 10, 1, 2])
        #expect(try z.takeAlong(Self.ints([1, 3, 0], [3, 1]), axis: 1).doubles == [1, 7, 8])
        #expect(try z.takeAlong(Self.ints([2, 0, 1, 1], [1, 4]), axis: 0).doubles == [8, 1, 6, 7])
        #expect(try z.gatherND(Self.ints([0, 1, 2, 3], [2, 2])).doubles == [1, 11])
        #expect(try z.gatherND(Self.ints([2], [1, 1])).doubles == [8, 9, 10, 11])
        #expect(throws: TensorError.self) { try z[rows, Self.ints([0, 4, 0])] }
        #expect(throws: TensorError.self) { try z.takeAlong(Self.ints([1, 2, 3]), axis: 1) }
        #expect(throws: TensorError.self) { try z[.all, labels] }
        #expect(throws: TensorError.self) { try z[Tensor([0.5])] }
    }

    @Test("x.at[…].add accumulates repeated indices and is differentiable in both arguments")
    func indexedAdd() throws {
        let base = try Tensor.zeros([4])
        #expect(try base.at[Self.ints([0, 0, 3])].add(Tensor([1.0, 2, 5])).doubles == [3, 0, 0, 5])
        #expect(try base.at[1...].add(1.0).doubles == [0, 1, 1, 1])
        let grid = try Tensor.zeros([2, 3])
        #expect(try grid.at[Self.ints([0, 1]), Self.ints([2, 2])].add(Tensor([1.0, 4])).doubles == [0, 0, 1, 0, 0, 4])
        #expect(try grid.at[.all, .slice(step: 2)].add(7.0).doubles == [7, 0, 7, 7, 0, 7])
        #expect(try grid.at[1].get().shape == [3])
        let u = try Tensor([1.0, 2])
        let (gb, gu) = try gradient(at: grid, u) { b, u in
            try (b.at[Self.ints([0, 1]), Self.ints([2, 2])].add(u) * b.onesLike().at[.all, 2].add(1.0)).sum()
        }
        #expect(gb.doubles == [1, 1, 2, 1, 1, 2] && gu.doubles == [2, 2])
    }

    @Test("every selection is differentiable: reverse mode matches forward mode and the scatter of the seed")
    func derivatives() throws {
        let x = try Tensor.uniform([3, 4], key: RandomKey(seed: 7))
        let weights = try Tensor.arange(1, 7).reshaped([3, 2])
        let select: (Tensor) throws -> Tensor = { x in
            try x[.slice(step: -1), .slice(0, nil, step: 2)] * weights
        }
        let g = try gradient(at: x) { try select($0).sum() }
        // d/dx of Σ w ⊙ x[rev rows, even cols]: w placed back where each element came from.
        #expect(g.doubles == [5, 0, 6, 0, 3, 0, 4, 0, 1, 0, 2, 0])
        let j = try jacobian(of: select, at: x, mode: .forward), jr = try jacobian(of: select, at: x, mode: .reverse)
        #expect(j.doubles == jr.doubles)
        let labels = try Self.ints([3, 0, 2])
        let picked = try gradient(at: x) { try $0.takeAlong(labels.reshaped([3, 1]), axis: 1).sum() }
        #expect(picked.doubles == [0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 1, 0])
        let direction = try Tensor.ones([3, 4])
        let (_, tangent) = try jvp(at: x, direction: direction) { try $0[Tensor.arange(0, 3, dtype: .int64), labels] }
        #expect(tangent.doubles == [1, 1, 1])
    }

    @Test("traced index tensors that are out of range fail in the gather, never alias another point")
    func tracedIndices() throws {
        let z = try Self.grid()
        let (bundle, outputs) = try traceGraph({ a in [try a[0][Tensor.arange(0, 3, dtype: .int64), a[1]]] },
                                               at: [z, Self.ints([1, 2, 3])])
        #expect(outputs[0].doubles == [1, 6, 11])
        #expect(try bundle.execute([z, Self.ints([0, -1, 1])])[0].doubles == [0, 7, 9])
        // 4 would be the first element of the next row if the flat index were not checked.
        #expect(throws: TensorError.self) { try bundle.execute([z, Self.ints([4, 0, 0])]) }
    }

    @Test("matmul takes vectors as NumPy does")
    func matmulVectors() throws {
        let a = try Tensor([1.0, 2, 3, 4, 5, 6], shape: [2, 3])
        let v = try Tensor([1.0, 0, -1]), w = try Tensor([2.0, 1])
        #expect(try a.matmul(v).shape == [2] && a.matmul(v).doubles == [-2, -2])
        #expect(try w.matmul(a).shape == [3] && w.matmul(a).doubles == [6, 9, 12])
        #expect(try v.matmul(v).shape == [] && v.matmul(v).item() == 2)
        #expect(try a.matmul(w, transposeSelf: true).doubles == [6, 9, 12])
        let batch = try Tensor.ones([4, 2, 3])
        #expect(try batch.matmul(v).shape == [4, 2])
        #expect(try w.matmul(batch).shape == [4, 3])
        let g = try gradient(at: v) { try a.matmul($0).sum() }
        #expect(g.doubles == [5, 7, 9])
    }
}
