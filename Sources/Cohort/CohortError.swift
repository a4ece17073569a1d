/// An error a user can act on: one line naming the file, key, layer or tensor at fault.
public struct CohortError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
