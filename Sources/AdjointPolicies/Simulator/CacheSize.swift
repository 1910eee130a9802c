/// A cache size as a person writes it: `1000` (objects or bytes) or `5%` of the workload's
/// footprint.
public enum CacheSize {
    /// Why a cache size is refused: the field (an option's name), the text and the accepted range.
    public struct Invalid: Error, Equatable, CustomStringConvertible {
        public var field: String
        public var text: String
        public var expected: String
        public var description: String { "\(field) '\(text)': \(expected)" }
    }

    /// Parses `text`: a count in `1 ... Int64.max`, or a finite percentage above 0% and at most 100%
    /// of `footprint` (at least 1; 100% of `Int64.max` is `Int64.max`).
    ///
    /// - Throws: ``Invalid`` naming `field`.
    public static func parse(_ text: String, footprint: Int64, field: String = "cache size") throws -> Int64 {
        if text.hasSuffix("%") {
            guard let p = Double(text.dropLast()), p.isFinite, p > 0, p <= 100 else {
                throw Invalid(field: field, text: text, expected: "a percentage of the footprint must be a number above 0% and at most 100%")
            }
            let size = (Double(Swift.max(0, footprint)) * p / 100).rounded(.down)
            return size >= Double(Int64.max) ? .max : Swift.max(1, Int64(size))   // 2^63 does not fit
        }
        guard let n = Int64(text), n > 0 else {
            throw Invalid(field: field, text: text, expected: "expected a count from 1 to \(Int64.max) or a percentage like 5%")
        }
        return n
    }
}
