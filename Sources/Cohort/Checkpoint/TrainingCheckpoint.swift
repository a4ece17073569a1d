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
    /// The steps after the last point of the metrics log (nil in checkpoints of earlier versions:
    /// none). Open at a stop between logged steps, whose point a resumed run replaces.
    public var logWindow: LogWindow?
    /// `Dataset.fingerprint` of the training data (nil in checkpoints of earlier versions).
    public var dataFingerprint: UInt32?

    enum CodingKeys: String, CodingKey {
        case step, epoch, seed, config
        case stepInEpoch = "step_in_epoch", batchSize = "batch_size", worldSize = "world_size", logWindow = "log_window"
        case dataFingerprint = "data_fingerprint"
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
            guard let data = files[name] else { throw CheckpointStore.unlisted(name, in: directory) }
            return data
        }
        let modelPath = directory.appendingPathComponent(modelFile).path
        try model.importStateDict(SafeTensors.decode(try file(modelFile), name: modelPath).tensors, source: modelPath)
        let optimizerPath = directory.appendingPathComponent(optimizerFile).path
        let state = try SafeTensors.decode(try file(optimizerFile), name: optimizerPath).tensors
        let expected = Set(optimizer.stateTensors().map(\.name) + ["steps"])
        if let extra = state.keys.filter({ !expected.contains($0) }).sorted().first {
            throw CohortError("\(optimizerPath): unexpected tensor '\(extra)' (this optimizer keeps \(expected.sorted().joined(separator: ", ")); was the optimizer changed?)")
        }
        for (name, values) in optimizer.stateTensors() {
            guard let tensor = state[name], tensor.dtype == .f32, tensor.count == model.parameters.count else {
                throw CohortError("\(optimizerPath): tensor '\(name)' is missing or does not have \(model.parameters.count) float32 values (was the optimizer changed?)")
            }
            for (i, v) in tensor.floats().enumerated() {
                guard v.isFinite else { throw CohortError("\(optimizerPath): tensor '\(name)' holds a NaN or an infinity at element \(i)") }
                values[i] = v
            }
        }
        guard let steps = state["steps"]?.int64s().first else { throw CohortError("\(optimizerPath): tensor 'steps' is missing") }
        // Past 2^53 the step count is no longer a count (a float's bias correction, an overflow at +1).
        guard (0...(Int64(1) << 53)).contains(steps) else { throw CohortError("\(optimizerPath): tensor 'steps' is \(steps), not a count of steps") }
        optimizer.steps = steps
        let progressPath = directory.appendingPathComponent(progressFile).path
        let progress = try readProgress(try file(progressFile), path: progressPath)
        // The store names a checkpoint after its step, and a resumed run writes its own under those names.
        if let named = Int(directory.lastPathComponent), named != progress.step {
            throw CohortError("\(progressPath): 'step' is \(progress.step), but the checkpoint's directory is named \(named) (checkpoints are named after their step): renamed by hand? name it \(progress.step), or resume another")
        }
        return progress
    }

    /// `progress.json`, its counts checked (a negative step would index before the shuffled samples).
    static func readProgress(_ data: Data, path: String) throws -> TrainingProgress {
        guard (try? JSONSerialization.jsonObject(with: data)) is [String: Any] else {
            throw CohortError("\(path): unreadable progress record (not a JSON object)")
        }
        let progress: TrainingProgress
        do {
            progress = try JSONDecoder().decode(TrainingProgress.self, from: data)
        } catch let DecodingError.keyNotFound(key, context) {
            throw CohortError("\(path): unreadable progress record: '\((context.codingPath + [key]).map(\.stringValue).joined(separator: "."))' is missing")
        } catch let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context),
                let DecodingError.dataCorrupted(context) where !context.codingPath.isEmpty {
            let key = context.codingPath.map(\.stringValue).joined(separator: ".")
            let kind = switch key {
            case "config": "a string"
            case "log_window": "an object (steps, loss_sum, accuracy_sum, seconds)"
            case "log_window.steps": "a whole number"
            case _ where key.hasPrefix("log_window."): "a number"
            default: "a whole number"
            }
            throw CohortError("\(path): unreadable progress record: '\(key)' is not \(kind)")
        } catch {
            // JSON as such, but a number where a whole one belongs (the decoder names no key then).
            throw CohortError("\(path): unreadable progress record: a count is not a whole number")
        }
        for (key, value, least) in [("step", progress.step, 0), ("epoch", progress.epoch, 0), ("step_in_epoch", progress.stepInEpoch, 0),
                                    ("batch_size", progress.batchSize, 1), ("world_size", progress.worldSize, 1)] where value < least {
            throw CohortError("\(path): '\(key)' is \(value), must be >= \(least)")
        }
        if let window = progress.logWindow, let fault = window.fault(atStep: progress.step) {
            throw CohortError("\(path): 'log_window' \(fault)")
        }
        return progress
    }
}
