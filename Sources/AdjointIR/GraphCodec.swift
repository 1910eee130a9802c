import Foundation

/// Reads and writes graphs in Adjoint's versioned interchange format.
///
/// The format is UTF-8 JSON: `{"format": "adjoint.graph", "version": N, "graph": {...}}`.
/// Operators are stored by their stable raw values. A reader rejects files of a newer version with
/// ``IRError/unsupportedVersion(found:supported:)`` and damaged files with ``IRError/corruptFile(_:)``.
public enum GraphCodec {
    /// The format version this build writes and the newest it reads.
    public static let currentVersion = 1
    /// The magic string in every file.
    public static let formatName = "adjoint.graph"

    private struct Envelope: Codable {
        var format: String
        var version: Int
        var graph: Graph?
    }

    /// Serializes `graph` (stable key order, so equal graphs give equal bytes).
    public static func encode(_ graph: Graph) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return try encoder.encode(Envelope(format: formatName, version: currentVersion, graph: graph))
    }

    /// Parses and verifies a serialized graph.
    public static func decode(_ data: Data) throws -> Graph {
        let decoder = JSONDecoder()
        let header: Envelope
        do {
            struct Header: Codable { var format: String; var version: Int }
            let h = try decoder.decode(Header.self, from: data)
            header = Envelope(format: h.format, version: h.version, graph: nil)
        } catch {
            throw IRError.corruptFile("no readable header (\(error))")
        }
        guard header.format == formatName else {
            throw IRError.corruptFile("format is \"\(header.format)\", expected \"\(formatName)\"")
        }
        guard header.version <= currentVersion, header.version >= 1 else {
            throw IRError.unsupportedVersion(found: header.version, supported: currentVersion)
        }
        let envelope: Envelope
        do {
            envelope = try decoder.decode(Envelope.self, from: data)
        } catch {
            throw IRError.corruptFile("graph body does not decode: \(error)")
        }
        guard let graph = envelope.graph else { throw IRError.corruptFile("graph body is missing") }
        try graph.verify()
        return graph
    }
}
