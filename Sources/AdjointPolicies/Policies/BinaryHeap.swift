/// Elements a ``BinaryHeap`` hands out in `precedes` order (first the one that precedes all others).
protocol HeapOrdered {
    static func precedes(_ a: Self, _ b: Self) -> Bool
}

/// A binary heap in one array: push and pop in O(log n), specialized for its element type (the
/// ordering is a static method, not a closure, so the comparisons inline).
struct BinaryHeap<Element: HeapOrdered> {
    private(set) var items: [Element] = []

    init() {}

    /// A heap of `elements` (Floyd's bottom-up construction, O(n)).
    init(heapifying elements: [Element]) {
        items = elements
        for i in stride(from: items.count / 2 - 1, through: 0, by: -1) { siftDown(i) }
    }

    var count: Int { items.count }
    var first: Element? { items.first }

    mutating func push(_ element: Element) {
        items.append(element)
        var i = items.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard Element.precedes(items[i], items[parent]) else { break }
            items.swapAt(i, parent)
            i = parent
        }
    }

    @discardableResult
    mutating func pop() -> Element? {
        guard let top = items.first else { return nil }
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            siftDown(0)
        }
        return top
    }

    private mutating func siftDown(_ start: Int) {
        var i = start
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < items.count, Element.precedes(items[l], items[m]) { m = l }
            if r < items.count, Element.precedes(items[r], items[m]) { m = r }
            if m == i { return }
            items.swapAt(i, m)
            i = m
        }
    }
}
