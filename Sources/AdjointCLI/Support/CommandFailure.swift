import Foundation
import ArgumentParser
/// A command that ran and failed on its input (exit status 1, no usage text): the message says
/// which input and why.
struct CommandFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Refuses an output path whose directory does not exist (commands never create directories).
func requireExistingParent(_ path: String, option: String) throws {
    let parent = (path as NSString).deletingLastPathComponent
    var isDirectory: ObjCBool = false
    guard parent.isEmpty || (FileManager.default.fileExists(atPath: parent, isDirectory: &isDirectory) && isDirectory.boolValue) else {
        throw ValidationError("\(option) '\(path)': the directory '\(parent)' does not exist (it is not created)")
    }
}
