import Foundation

/// What a checkpoint holds besides the weights: where training stands.
public struct TrainingProgress: Codable, Equatable, Sendable {
    /// Steps completed; the next step to run.
    public var step: Int
    public var epoch: Int
    public var stepInEpoch: Int
    public var seed: UInt64
    public var batchSize: Int
    /// Workers of the run that wrote it (informative: a run may resume on another number).
    public var worldSize: Int
    /// The config the run was trained with.
    public var config: String

    enum CodingKeys: String, CodingKey {
        case step, epoch, seed, config
        case stepInEpoch = "step_in_epoch", batchSize = "batch_size", worldSize = "world_size"
    }
}

/// The files of one checkpoint: `model.safetensors` (PyTorch's state dict), `optimizer.safetensors`
/// (the optimizer's flat state) and `progress.json` (step, epoch, data cursor, seed, config).
/// Dropout masks and shuffles are functions of (seed, step), so the step is the whole RNG state.
public enum TrainingCheckpoint {
    public static let modelFile = "model.safetensors"
    public static let optimizerFile = "optimizer.safetensors"
    public static let progressFile = "progress.json"

    public static func files(model: Model<Float>, optimizer: Optimizer, progress: TrainingProgress) throws -> [(name: String, data: Data)] {
        let modelData = try SafeTensors.encode(model.exportStateDict(), metadata: ["format": "pt"])
        var optimizerTensors = optimizer.stateTensors().map {
            ($0.name, SafeTensors.Tensor(floats: $0.values, shape: [model.parameters.count]))
        }
        optimizerTensors.append(("steps", SafeTensors.Tensor(int64: [optimizer.steps], shape: [])))
        let optimizerData = try SafeTensors.encode(optimizerTensors)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return [(modelFile, modelData), (optimizerFile, optimizerData), (progressFile, try encoder.encode(progress))]
    }

    /// Restores model and optimizer from a verified checkpoint directory and returns its progress.
    public static func restore(from directory: URL, model: Model<Float>, optimizer: Optimizer) throws -> TrainingProgress {
        let files = try CheckpointStore.readVerified(directory)
        func file(_ name: String) throws -> Data {
            guard let data = files[name] else { throw CohortError("\(directory.path): checkpoint has no \(name)") }
            return data
        }
        let modelPath = directory.appendingPathComponent(modelFile).path
        try model.importStateDict(SafeTensors.decode(try file(modelFile), name: modelPath).tensors, source: modelPath)
        let optimizerPath = directory.appendingPathComponent(optimizerFile).path
        let state = try SafeTensors.decode(try file(optimizerFile), name: optimizerPath).tensors
        for (name, values) in optimizer.stateTensors() {
            guard let tensor = state[name], tensor.dtype == .f32, tensor.count == model.parameters.count else {
                throw CohortError("\(optimizerPath): tensor '\(name)' is missing or does not have \(model.parameters.count) float32 values (was the optimizer changed?)")
            }
            for (i, v) in tensor.floats().enumerated() { values[i] = v }
        }
        guard let steps = state["steps"]?.int64s().first else { throw CohortError("\(optimizerPath): tensor 'steps' is missing") }
        optimizer.steps = steps
        let progressPath = directory.appendingPathComponent(progressFile).path
        do {
            return try JSONDecoder().decode(TrainingProgress.self, from: try file(progressFile))
        } catch let error as CohortError {
            throw error
        } catch {
            throw CohortError("\(progressPath): unreadable progress record")
        }
    }
}
