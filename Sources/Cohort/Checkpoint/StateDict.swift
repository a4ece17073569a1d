/// Moving a model's state-dict tensors to and from safetensors, checked tensor by tensor.
extension Model {
    /// Every state-dict tensor as float32 (and `num_batches_tracked` as int64), PyTorch's dtypes.
    public func exportStateDict() -> [(String, SafeTensors.Tensor)] {
        stateTensors().map { tensor in
            switch tensor.storage {
            case .scalars(let raw):
                let values = raw.assumingMemoryBound(to: Element.self)
                return (tensor.name, SafeTensors.Tensor(floats: (0..<tensor.count).map { Float(values[$0]) }, shape: tensor.shape))
            case .int64(let pointer):
                return (tensor.name, SafeTensors.Tensor(int64: Array(UnsafeBufferPointer(start: pointer, count: tensor.count)), shape: tensor.shape))
            }
        }
    }

    /// Loads a full state dict; a missing, extra, misshapen or mistyped tensor is an error naming it
    /// and `source`. A missing `num_batches_tracked` (files of PyTorch before 0.4, and of tools that
    /// leave it out) starts at 0, as `load_state_dict` leaves a fresh batch norm's.
    public func importStateDict(_ tensors: [String: SafeTensors.Tensor], source: String) throws {
        let expected = stateTensors()
        let names = Set(expected.map(\.name))
        if let extra = tensors.keys.sorted().first(where: { !names.contains($0) }) {
            throw CohortError("\(source): tensor '\(extra)' is not in this model (its tensors: \(expected.map(\.name).joined(separator: ", ")))")
        }
        for tensor in expected {
            guard let given = tensors[tensor.name] else {
                if case .int64(let pointer) = tensor.storage {
                    pointer.update(repeating: 0, count: tensor.count)
                    continue
                }
                throw CohortError("\(source): tensor '\(tensor.name)' is missing (the model needs \(describe(tensor.shape)))")
            }
            guard given.shape == tensor.shape || (tensor.shape.isEmpty && given.shape == [1]) else {
                throw CohortError("\(source): tensor '\(tensor.name)' has shape \(describe(given.shape)), the model needs \(describe(tensor.shape))")
            }
            switch tensor.storage {
            case .scalars(let raw):
                guard given.dtype.isFloatingPoint else {
                    throw CohortError("\(source): tensor '\(tensor.name)' has dtype \(given.dtype.rawValue), expected a floating-point one (F32, F64, F16 or BF16)")
                }
                let stored = given.doubles(), values = stored.map { Element($0) }
                if let bad = values.firstIndex(where: { !$0.isFinite }) {
                    throw CohortError(stored[bad].isFinite
                        ? "\(source): tensor '\(tensor.name)' holds \(stored[bad]) at element \(bad), beyond float32's range"
                        : "\(source): tensor '\(tensor.name)' holds a NaN or an infinity at element \(bad)")
                }
                // A batch norm divides by its square root at inference: a negative one makes every output NaN.
                if tensor.holdsVariances, let bad = values.firstIndex(where: { $0 < 0 }) {
                    throw CohortError("\(source): tensor '\(tensor.name)' holds a negative variance, \(stored[bad]), at element \(bad)")
                }
                raw.assumingMemoryBound(to: Element.self).update(from: values, count: values.count)
            case .int64(let pointer):
                guard given.dtype == .i64 || given.dtype == .f32 else {
                    throw CohortError("\(source): tensor '\(tensor.name)' has dtype \(given.dtype.rawValue), expected I64 (or F32)")
                }
                for (i, v) in given.int64s().enumerated() { pointer[i] = v }
            }
        }
    }
}
