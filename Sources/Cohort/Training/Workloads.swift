/// The canonical benchmark workloads (`shared/reference/workloads.md`), as model configs.
public enum Workload: String, CaseIterable, Sendable {
    case cnn, mlp, lstm, resnetish, resnet20

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
            case .resnet20:
                config = Workload.resnet20(inChannels: 3)
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

    /// He et al. (2016)'s CIFAR ResNet-20, as `resnet20()` in `shared/reference/ref_torch.py`: a
    /// 3x3 convolution to 16 channels, 3 stages of 3 basic blocks (16, 32, 64 channels; the first
    /// block of stages 2 and 3 halves the size, with a 1x1 convolution + batch norm shortcut),
    /// global average pooling and a dense layer to 10 classes. 272,474 parameters for 3 channels.
    public static func resnet20(inChannels: Int, classes: Int = 10) -> ModelConfig {
        func conv(_ out: Int, _ kernel: Int, stride: Int = 1) -> LayerSpec {
            .conv2d(outChannels: out, kernel: kernel, stride: stride, padding: kernel / 2, bias: false, initializer: LayerInit())
        }
        let norm = LayerSpec.batchnorm(momentum: 0.1, epsilon: 1e-5, synchronized: true)
        var config = ModelConfig()
        config.input = [inChannels, 32, 32]
        config.layers = [conv(16, 3), norm, .activation(.relu)]
        var channels = 16
        for (out, stride) in [(16, 1), (16, 1), (16, 1), (32, 2), (32, 1), (32, 1), (64, 2), (64, 1), (64, 1)] {
            let body = [conv(out, 3, stride: stride), norm, .activation(.relu), conv(out, 3), norm]
            let shortcut = stride == 1 && channels == out ? [] : [conv(out, 1, stride: stride), norm]
            config.layers += [.residual(body: body, shortcut: shortcut), .activation(.relu)]
            channels = out
        }
        config.layers += [.adaptiveAvgPool(outHeight: 1, outWidth: 1), .flatten,
                          .dense(outFeatures: classes, bias: true, initializer: LayerInit())]
        return config
    }
}
