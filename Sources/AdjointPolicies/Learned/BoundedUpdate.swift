/// The conservative updates of the online guardrails: a step against the gradient whose length is
/// a fixed fraction of the weights' norm, whatever the gradient's size.
enum BoundedUpdate {
    static func norm(_ x: [Double]) -> Double { x.reduce(0) { $0 + $1 * $1 }.squareRoot() }

    /// `weights − maximum·max(‖weights‖, 10⁻³)·gradient/‖gradient‖`, or nil when the gradient is
    /// zero or not finite.
    static func step(_ weights: [Double], along gradient: [Double], maximum: Double) -> [Double]? {
        let g = norm(gradient)
        guard g > 0, g.isFinite else { return nil }
        let length = maximum * Swift.max(norm(weights), 1e-3) / g
        return zip(weights, gradient).map { $0 - length * $1 }
    }

    /// `‖b − a‖ / ‖a‖`.
    static func relativeChange(_ a: [Double], _ b: [Double]) -> Double {
        norm(zip(a, b).map { $0 - $1 }) / Swift.max(1e-12, norm(a))
    }
}
