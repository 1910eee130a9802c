import AdjointTensor
/// CRC-32C (Castagnoli, polynomial 0x1EDC6F41, reflected), the checksum of iSCSI, ext4 and
/// LevelDB logs: checkpoint files and event-log records carry it so damage is detected on load.
///
/// Slicing-by-8 in software (about 1–2 GB/s); checked against RFC 3720's test vectors.
public struct CRC32C: Sendable {
    /// The checksum of everything fed so far.
    public var value: UInt32 { ~state }
    private var state: UInt32 = 0xFFFF_FFFF

    public init() {}

    /// The checksum of `bytes`.
    public static func checksum<C: Collection>(_ bytes: C) -> UInt32 where C.Element == UInt8 {
        var crc = CRC32C()
        crc.update(bytes)
        return crc.value
    }

    /// Feeds `bytes`.
    public mutating func update<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        if let done = bytes.withContiguousStorageIfAvailable({ update(UnsafeRawBufferPointer($0)) }) { return done }
        update(Array(bytes))
    }

    /// Feeds raw memory.
    public mutating func update(_ buffer: UnsafeRawBufferPointer) {
        let table = CRC32C.table
        var crc = state
        var n = buffer.count
        guard var q = buffer.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return }
        while n >= 8 {
            let lo = crc ^ (UInt32(q[0]) | UInt32(q[1]) << 8 | UInt32(q[2]) << 16 | UInt32(q[3]) << 24)
            crc = table[7 * 256 + Int(lo & 0xFF)] ^ table[6 * 256 + Int((lo >> 8) & 0xFF)]
                ^ table[5 * 256 + Int((lo >> 16) & 0xFF)] ^ table[4 * 256 + Int(lo >> 24)]
                ^ table[3 * 256 + Int(q[4])] ^ table[2 * 256 + Int(q[5])]
                ^ table[1 * 256 + Int(q[6])] ^ table[Int(q[7])]
            q += 8
            n -= 8
        }
        while n > 0 {
            crc = table[Int((crc ^ UInt32(q[0])) & 0xFF)] ^ (crc >> 8)
            q += 1
            n -= 1
        }
        state = crc
    }

    /// Eight 256-entry tables: table k advances a byte through k further zero bytes.
    private static let table: [UInt32] = {
        var t = [UInt32](repeating: 0, count: 8 * 256)
        for i in 0..<256 {
            var c = UInt32(i)
            for _ in 0..<8 { c = c & 1 != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
            t[i] = c
        }
        for k in 1..<8 {
            for i in 0..<256 { t[k * 256 + i] = (t[(k - 1) * 256 + i] >> 8) ^ t[Int(t[(k - 1) * 256 + i] & 0xFF)] }
        }
        return t
    }()
}

extension CRC32C {
    /// `crc32c:XXXXXXXX` of `text` followed by each tensor's name, a zero byte and its bytes, in the
    /// order given: the checksum of checkpoints, graph bundles and run digests.
    public static func digest(text: String = "", tensors: [(name: String, tensor: Tensor)]) -> String {
        var crc = CRC32C()
        crc.update(Array(text.utf8))
        for (name, t) in tensors {
            crc.update(Array(name.utf8) + [0])
            crc.update(UnsafeRawBufferPointer(start: t.rawPointer, count: t.elementCount * t.dtype.byteSize))
        }
        let hex = String(crc.value, radix: 16)
        return "crc32c:" + String(repeating: "0", count: 8 - hex.count) + hex
    }

    /// ``digest(text:tensors:)`` over a dictionary of tensors, in name order.
    public static func digest(text: String = "", tensors: [String: Tensor]) -> String {
        digest(text: text, tensors: tensors.keys.sorted().map { ($0, tensors[$0]!) })
    }
}
