/// The release of this build (recorded in run manifests and printed by `adjoint --version`).
public enum AdjointVersion {
    public static let current = "0.2.0"
}
