import Cohort
import Foundation

/// Loads the weights of a checkpoint into `model`: `argument` is `auto` (the newest complete
/// checkpoint under `checkpoint.dir`) or a checkpoint directory. Returns the directory used.
/// When `latest` does not name a complete checkpoint, the coordinator says which one `auto` takes.
func loadCheckpoint(_ argument: String, into model: Model<Float>, config: TrainingConfig, purpose: String,
                    communicator: Communicator) throws -> URL {
    guard !argument.isEmpty else { throw CohortError("--checkpoint: expected auto or a checkpoint directory, got an empty string") }
    let directory: URL
    if argument == "auto" {
        let store = CheckpointStore(runDirectory: config.checkpoint.dir, keep: config.checkpoint.keep)
        guard let latest = try store.latestDirectory(choosing: "--checkpoint DIR", note: { if communicator.isCoordinator { printError($0) } }) else {
            throw CohortError("\(store.root.path): no checkpoint to \(purpose) (train first, or pass --checkpoint DIR)")
        }
        directory = latest
    } else {
        directory = URL(fileURLWithPath: argument)
    }
    let files = try CheckpointStore.readVerified(directory)
    let modelPath = directory.appendingPathComponent(TrainingCheckpoint.modelFile).path
    guard let data = files[TrainingCheckpoint.modelFile] else { throw CheckpointStore.unlisted(TrainingCheckpoint.modelFile, in: directory) }
    try model.importStateDict(SafeTensors.decode(data, name: modelPath).tensors, source: modelPath)
    return directory
}
