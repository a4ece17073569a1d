#!/usr/bin/env python3
"""Reads a run's TensorBoard event files with TensorBoard's own reader and prints every scalar.

    python Tests/scripts/check_tensorboard.py runs/mnist-cnn/tensorboard

An independent check of Cohort's hand-written event files (TFRecord framing, CRC-32C, Event
protobufs): needs `pip install tensorboard`; the Swift tests decode the files themselves and do
not need it. Exits with status 1 when a tag Cohort writes is missing.
"""
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

EXPECTED = ["train/loss", "train/accuracy", "lr", "test/loss", "test/accuracy"]


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 64
    accumulator = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0})
    accumulator.Reload()
    tags = accumulator.Tags()["scalars"]
    for tag in sorted(tags):
        events = accumulator.Scalars(tag)
        values = " ".join(f"{event.step}:{event.value:.4g}" for event in events)
        print(f"{tag} ({len(events)} points): {values}")
    missing = [tag for tag in EXPECTED if tag not in tags]
    if missing:
        print(f"missing tags: {', '.join(missing)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
