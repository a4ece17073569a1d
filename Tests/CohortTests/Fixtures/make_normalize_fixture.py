"""Generates the normalisation fixture that NumPyTests and AugmentationTests load (no torch needed
to run the tests): torchvision's ToTensor + Normalize computed by PyTorch in float64, and the same
after zero padding (RandomCrop's padding, before ToTensor), for Cohort's data.normalize.

    normalize-images.npy    uint8 [4, 3, 5, 7], saved by NumPy (format 1.0, C order)
    normalize-labels.npy    int64 [4]
    normalize-expected.npy  float64 [4, 3, 5, 7]: (x / 255 - mean[c]) / std[c]
    normalize-padded.npy    float64 [4, 3, 5 + 2P, 7 + 2P], P = 2: the same of the zero-padded images

Run from anywhere:  python3 Tests/CohortTests/Fixtures/make_normalize_fixture.py   (needs torch, numpy)
"""
import os
import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
MEAN, STD, PADDING = [0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616], 2


def normalize(images):
    """ToTensor then Normalize, as torchvision does them, in float64: x / 255, then (x - mean) / std."""
    x = torch.from_numpy(images).double() / 255
    mean = torch.tensor(MEAN, dtype=torch.float64).view(1, -1, 1, 1)
    std = torch.tensor(STD, dtype=torch.float64).view(1, -1, 1, 1)
    return ((x - mean) / std).numpy()


def main():
    rng = np.random.default_rng(14)
    images = rng.integers(0, 256, size=(4, 3, 5, 7), dtype=np.uint8)
    padded = torch.nn.functional.pad(torch.from_numpy(images), (PADDING,) * 4).numpy()
    np.save(os.path.join(HERE, "normalize-images.npy"), images)
    np.save(os.path.join(HERE, "normalize-labels.npy"), np.array([3, 1, 4, 1], dtype=np.int64))
    np.save(os.path.join(HERE, "normalize-expected.npy"), normalize(images))
    np.save(os.path.join(HERE, "normalize-padded.npy"), normalize(padded))


if __name__ == "__main__":
    main()
