#!/usr/bin/env python3
"""A model of one data-parallel training step of the canonical workloads (docs/scaling.md).

    step = forward + backward, with every gradient bucket summed over the workers as soon as
           backward has finished its layers (the communication thread), then the update:
    bucket j ready at r_j = forward + backward time of the layers after and in it;
    its allreduce takes c_j = 2 log2(N) alpha + 2 (N-1)/N * values_j * bytes / (GOODPUT * rate)
           (reduce-scatter then allgather, Rabenseifner's; for bf16 the same with 2-byte values);
    they run one after the other: F_j = max(r_j, F_{j-1}) + c_j; step = max(compute, F_last).
    Without overlap: step = compute + the allreduce of the whole buffer.

Compute per step is measured (`cohort bench W` with one worker per test host on the unshaped link,
32 images per worker); it is split 1 : 2 between forward and backward, and backward between the
layers by their multiply-adds (a first layer computes no input gradient). Buckets are cut as
Cohort cuts them (whole layers from the end, at least 2^18 values).

usage: benchmarks/scaling-model.py [WORKLOAD=MS_PER_STEP ...]   (default: this sitting's figures)
"""
import math
import sys

# Per layer in forward order: (parameters, forward multiply-adds per image).
WORKLOADS = {
    "cnn": [(320, 28 * 28 * 32 * 9), (64, 0), (18_496, 14 * 14 * 64 * 288), (128, 0),
            (401_536, 3136 * 128), (1290, 1280)],
    "mlp": [(401_920, 784 * 512), (1024, 0), (262_656, 512 * 512), (1024, 0), (5130, 5120)],
    "lstm": [(80_896, 28 * 4 * 128 * (28 + 128)), (1290, 1280)],
    "resnetish": [(864, 1024 * 32 * 27), (64, 0), (9216, 1024 * 32 * 288), (64, 0),
                  (18_432, 256 * 64 * 288), (128, 0), (36_864, 256 * 64 * 576), (128, 0),
                  (73_728, 64 * 128 * 576), (256, 0), (147_456, 64 * 128 * 1152), (256, 0),
                  (524_544, 2048 * 256), (2570, 2560)],
}
# Milliseconds per step of 64 images on two workers of a quiet 2-core machine (machine C of
# shared/reference/workloads.md: cnn 5,500, mlp 29,200, lstm 14,500 images/s; resnetish 864, the
# median of issue 19's unshaped run across the test hosts).
MEASURED = {"cnn": 11.6, "mlp": 2.2, "lstm": 4.4, "resnetish": 74.0}
BUCKET = 1 << 18
# The share of a link's rate that an allreduce gets: 0.6 fits issue 19's measurements without
# overlap on the 1 Gbit/s test link (resnetish kept 61 %, cnn 34 %, mlp ~10 %); used for every link.
GOODPUT = 0.6


def buckets(layers):
    """(values, index of the first layer) per bucket, in sending order."""
    result, values = [], 0
    for index in reversed(range(len(layers))):
        values += layers[index][0]
        if values >= BUCKET:
            result.append((values, index))
            values = 0
    if values:
        result.append((values, 0))
    return result


def step_seconds(workload, compute, workers, rate, alpha, value_bytes=4, overlap=True):
    layers = WORKLOADS[workload]
    work = [(1 if i == 0 else 2) * macs for i, (_, macs) in enumerate(layers)]
    forward, backward = compute / 3, 2 * compute / 3
    total = sum(work)

    def allreduce(values):
        if workers == 1:
            return 0.0
        return 2 * math.log2(workers) * alpha + 2 * (workers - 1) / workers * values * value_bytes * 8 / (GOODPUT * rate)

    if not overlap:
        return compute + allreduce(sum(p for p, _ in layers))
    finished = 0.0
    for values, first in buckets(layers):
        ready = forward + backward * sum(work[first:]) / total
        finished = max(ready, finished) + allreduce(values)
    return max(compute, finished)


def main():
    measured = dict(MEASURED)
    for argument in sys.argv[1:]:
        name, value = argument.split("=")
        measured[name] = float(value)
    print("Two workers on a 1 Gbit/s link (alpha 0.1 ms): fraction of the unshaped throughput kept")
    print(f"{'workload':10} {'no overlap':>11} {'overlap':>8} {'overlap+bf16':>13}")
    for name, ms in measured.items():
        t = ms / 1000
        kept = [t / step_seconds(name, t, 2, 1e9, 1e-4, b, o) for b, o in ((4, False), (4, True), (2, True))]
        print(f"{name:10} {kept[0]:11.0%} {kept[1]:8.0%} {kept[2]:13.0%}")
    print()
    print("Predicted efficiency (step time on 1 node / on N nodes), 32 images per worker, overlap, float32 (bf16):")
    links = [(1e9, 50e-6, "1 Gbit/s"), (10e9, 20e-6, "10 Gbit/s"), (100e9, 3e-6, "100 Gbit/s")]
    print(f"{'workload':10} {'nodes':>5} " + " ".join(f"{label:>17}" for _, _, label in links))
    for name, ms in measured.items():
        t = ms / 1000
        for nodes in (8, 64, 512):
            cells = []
            for rate, alpha, _ in links:
                f32 = t / step_seconds(name, t, nodes, rate, alpha, 4)
                bf16 = t / step_seconds(name, t, nodes, rate, alpha, 2)
                cells.append(f"{f32:8.0%} ({bf16:4.0%})")
            print(f"{name:10} {nodes:5} " + " ".join(f"{c:>17}" for c in cells))


if __name__ == "__main__":
    main()
