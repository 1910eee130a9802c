/// The online schedule's forward sweep, which never reads the horizon: it learns of each step as it
/// is taken and of the end when the run stops.
///
/// Snapshots sit at multiples of a spacing `d` (initially 1). When all `snapshots` are in use and
/// another multiple of `d` arrives, `d` doubles and the snapshots off the new grid are dropped, so
/// about half are freed. At the end each segment between snapshots, the last first, is reversed by
/// Revolve with the snapshots then free.
struct OnlinePlanner {
    let snapshots: Int
    private(set) var spacing = 1
    private(set) var stored: [Int] = []
    private(set) var step = 0

    init(snapshots: Int) { self.snapshots = snapshots }

    mutating func start(_ emit: (CheckpointAction) throws -> Void) throws {
        stored = [0]
        step = 0
        try emit(.store(0))
    }

    /// Runs one more step and keeps a snapshot of its result when it falls on the grid.
    mutating func advance(_ emit: (CheckpointAction) throws -> Void) throws {
        step += 1
        try emit(.advance(to: step))
        guard step % spacing == 0 else { return }
        if stored.count == snapshots {
            spacing *= 2
            for k in stored where k % spacing != 0 { try emit(.free(k)) }
            stored.removeAll { $0 % spacing != 0 }
            guard step % spacing == 0 else { return }
        }
        stored.append(step)
        try emit(.store(step))
    }

    /// The run stopped at `s[step]`: reverse everything.
    mutating func reverse(_ emit: (CheckpointAction) throws -> Void) throws {
        if stored.last == step, step > 0 {
            stored.removeLast()
            try emit(.free(step))
        }
        var end = step
        while let start = stored.popLast() {
            let free = snapshots - stored.count
            try Revolve.reverse(from: start, to: end, snapshots: free, emit)
            end = start
        }
    }

    /// The whole forward sweep for a run of `steps` steps (the planner still learns of the end only
    /// after the last step).
    mutating func forward(through steps: Int, _ emit: (CheckpointAction) throws -> Void) throws {
        try start(emit)
        for _ in 0..<steps { try advance(emit) }
    }
}
