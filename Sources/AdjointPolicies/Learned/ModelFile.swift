import AdjointIO
import AdjointTensor
import Foundation

/// The file format of the learned policies' models: safetensors whose metadata holds a JSON
/// document under `key` and, under `key.checksum`, the CRC-32C of that text and every tensor.
enum ModelFile {
    /// Writes `tensors` and `metadata` atomically; returns the metadata's JSON.
    @discardableResult
    static func write(_ metadata: some Encodable, tensors: [String: Tensor], key: String, pretty: Bool = false, to path: String) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = pretty ? [.sortedKeys, .prettyPrinted] : [.sortedKeys]
        let json = try encoder.encode(metadata)
        let text = String(decoding: json, as: UTF8.self)
        try SafeTensors.write(tensors, metadata: [key: text, key + ".checksum": CRC32C.digest(text: text, tensors: tensors)], to: path)
        return json
    }

    /// The tensors and the decoded metadata of a file written by ``write(_:tensors:key:pretty:to:)``,
    /// after checking the checksum; `invalid(field, detail)` makes the caller's error.
    static func read<Metadata: Decodable, Failure: Error>(_ path: String, key: String, kind: String, as _: Metadata.Type,
                                                          invalid: (String, String) -> Failure) throws -> (Metadata, [String: Tensor]) {
        let (tensors, meta) = try SafeTensors.read(path)
        let checksumKey = key + ".checksum"
        guard let text = meta[key] else { throw invalid(key, "missing: not an Adjoint \(kind)") }
        guard let stored = meta[checksumKey] else { throw invalid(checksumKey, "missing: the file was not written by this format") }
        let computed = CRC32C.digest(text: text, tensors: tensors)
        guard stored == computed else { throw invalid(checksumKey, "stored \(stored), computed \(computed): the file was modified or damaged") }
        do { return (try JSONDecoder().decode(Metadata.self, from: Data(text.utf8)), tensors) } catch {
            throw invalid(key, "the metadata does not decode: \(error)")
        }
    }
}
