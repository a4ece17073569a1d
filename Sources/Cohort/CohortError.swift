/// An error a user can act on: one line naming the file, key, layer or tensor at fault.
public struct CohortError: Error, CustomStringConvertible, Equatable {
    public let message: String
    /// Thrown by every worker alike, at the same point of a step, after a collective that gave them
    /// all the same values (a loss that is not finite): one worker's line says it for all.
    public let sameOnEveryWorker: Bool
    public init(_ message: String, sameOnEveryWorker: Bool = false) {
        self.message = message
        self.sameOnEveryWorker = sameOnEveryWorker
    }
    public var description: String { message }
}
