/// A command that ran and failed on its input (exit status 1, no usage text): the message says
/// which input and why.
struct CommandFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
