#!/usr/bin/env python3
"""Reads the histograms of a run's TensorBoard event files with TensorBoard's own reader.

    python Tests/scripts/check_histograms.py runs/mnist-cnn/tensorboard

For a run trained with `train.histograms_every_steps`: prints each histogram tag with its steps
and, at the last step, the count, mean and standard deviation of the values, and checks that the
buckets hold every value. Needs `pip install tensorboard`; the Swift tests decode the files
themselves and do not need it. Exits with status 1 when there are no histograms, when a kind of
tag (weights/, gradients/, activations/) is missing, or when a histogram is inconsistent.
"""
import math
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

KINDS = ["weights/", "gradients/", "activations/"]


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 64
    accumulator = EventAccumulator(sys.argv[1], size_guidance={"histograms": 0})
    accumulator.Reload()
    tags = accumulator.Tags()["histograms"]
    failures = []
    for tag in sorted(tags):
        events = accumulator.Histograms(tag)
        last = events[-1].histogram_value
        mean = last.sum / last.num
        std = math.sqrt(max(0.0, last.sum_squares / last.num - mean * mean))
        steps = ",".join(str(event.step) for event in events)
        print(f"{tag} steps {steps}: num {last.num:.0f} min {last.min:.4g} max {last.max:.4g} mean {mean:.4g} std {std:.4g}")
        for event in events:
            value = event.histogram_value
            if abs(sum(value.bucket) - value.num) > 0.5 or len(value.bucket) != len(value.bucket_limit):
                failures.append(f"{tag} at step {event.step}: buckets hold {sum(value.bucket)} of {value.num} values")
    missing = [kind for kind in KINDS if not any(tag.startswith(kind) for tag in tags)]
    if not tags or missing:
        failures.append(f"missing histograms: {', '.join(missing) or 'all'}")
    for failure in failures:
        print(failure, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
