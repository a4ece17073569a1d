/// The canonical benchmark workloads (`shared/reference/workloads.md`), as model configs.
public enum Workload: String, CaseIterable, Sendable {
    case cnn, mlp, lstm, resnetish

    public var model: ModelConfig {
        get throws {
            var config = ModelConfig()
            switch self {
            case .cnn:
                config.input = [1, 28, 28]
                config.layers = [
                    .conv2d(outChannels: 32, kernel: 3, stride: 1, padding: 1, bias: true, initializer: LayerInit()),
                    .batchnorm(momentum: 0.1, epsilon: 1e-5, synchronized: true), .activation(.relu),
                    .pool(.max, kernel: 2, stride: 2, padding: 0),
                    .conv2d(outChannels: 64, kernel: 3, stride: 1, padding: 1, bias: true, initializer: LayerInit()),
                    .batchnorm(momentum: 0.1, epsilon: 1e-5, synchronized: true), .activation(.relu),
                    .pool(.max, kernel: 2, stride: 2, padding: 0),
                    .flatten, .dense(outFeatures: 128, bias: true, initializer: LayerInit()), .activation(.relu),
                    .dropout(p: 0.5), .dense(outFeatures: 10, bias: true, initializer: LayerInit()),
                ]
            case .mlp:
                config.input = [1, 28, 28]
                config.layers = [
                    .flatten, .dense(outFeatures: 512, bias: true, initializer: LayerInit()),
                    .batchnorm(momentum: 0.1, epsilon: 1e-5, synchronized: true), .activation(.relu), .dropout(p: 0.2),
                    .dense(outFeatures: 512, bias: true, initializer: LayerInit()),
                    .batchnorm(momentum: 0.1, epsilon: 1e-5, synchronized: true), .activation(.relu), .dropout(p: 0.2),
                    .dense(outFeatures: 10, bias: true, initializer: LayerInit()),
                ]
            case .resnetish:
                config.input = [3, 32, 32]
                for out in [32, 64, 128] {
                    config.layers += [
                        .conv2d(outChannels: out, kernel: 3, stride: 1, padding: 1, bias: false, initializer: LayerInit()),
                        .batchnorm(momentum: 0.1, epsilon: 1e-5, synchronized: true), .activation(.relu),
                        .conv2d(outChannels: out, kernel: 3, stride: 1, padding: 1, bias: false, initializer: LayerInit()),
                        .batchnorm(momentum: 0.1, epsilon: 1e-5, synchronized: true), .activation(.relu),
                        .pool(.max, kernel: 2, stride: 2, padding: 0),
                    ]
                }
                config.layers += [
                    .flatten, .dense(outFeatures: 256, bias: true, initializer: LayerInit()), .activation(.relu),
                    .dropout(p: 0.5), .dense(outFeatures: 10, bias: true, initializer: LayerInit()),
                ]
            case .lstm:
                config.input = [28, 28]
                config.layers = [
                    .lstm(hiddenSize: 128, returnSequences: false, bias: true, initializer: LayerInit()),
                    .dense(outFeatures: 10, bias: true, initializer: LayerInit()),
                ]
            }
            return config
        }
    }
}
