#!/usr/bin/env python3
"""Draws docs/init-study-activations.svg: the standard deviation of each layer's output at the first
training step of every configs/init-study/*.yaml, measured by Cohort itself.

    python3 docs/make_init_study_svg.py [COHORT_BINARY]     # default .build/release/cohort

Trains each config for one epoch with `train.histograms_every_steps` (the first step's
histograms are those of the initial weights' forward pass on batch 1; rank 0's batch of 64) into a
temporary directory, reads `layer_statistics` of step 1 from its metrics.jsonl, and plots
`activations/<i>.<kind>` std against the layer, on a log scale. Python's standard library only.
"""
import json
import math
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = [("constant", "constant 0.01", "#7f7f7f"), ("too-small", "N(0, 1e-4²)", "#1f77b4"),
           ("too-big", "N(0, 1)", "#d62728"), ("xavier", "Xavier (tanh)", "#2ca02c"), ("he", "He (ReLU)", "#9467bd")]
OUTPUT = os.path.join(ROOT, "docs", "init-study-activations.svg")


def first_step_stds(binary, name, directory):
    run = os.path.join(directory, name)
    subprocess.run([binary, "train", os.path.join(ROOT, "configs", "init-study", f"{name}.yaml"),
                    "--set", "train.epochs=1", "--set", "train.histograms_every_steps=1000000",
                    "--set", f"checkpoint.dir={run}"], check=True, stdout=subprocess.DEVNULL)
    with open(os.path.join(run, "metrics.jsonl")) as file:
        lines = [json.loads(line) for line in file if "layer_statistics" in line]
    statistics = next(line for line in lines if line["step"] == 1)["layer_statistics"]
    layers = []
    for tag, value in statistics.items():
        if tag.startswith("activations/"):
            index, kind = tag[len("activations/"):].split(".", 1)
            layers.append((int(index), kind, value["std"]))
    return sorted(layers)


def svg(series):
    width, height, left, right, top, bottom = 760, 420, 70, 170, 40, 60
    layers = sorted({index for _, _, _, points in series for index, _, _ in points})
    exponents = [math.log10(std) for _, _, _, points in series for _, _, std in points if std > 0]
    low, high = math.floor(min(exponents)), math.ceil(max(exponents))
    def x(index):
        return left + (index - layers[0]) / (layers[-1] - layers[0]) * (width - left - right)
    def y(std):
        e = math.log10(max(std, 10.0 ** low))
        return top + (high - e) / (high - low) * (height - top - bottom)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="14">Output std of each layer at the first step (configs/init-study, batch of 64)</text>']
    for e in range(low, high + 1, max(1, (high - low) // 8)):
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{y(10.0 ** e):.1f}" y2="{y(10.0 ** e):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 6}" y="{y(10.0 ** e) + 4:.1f}" text-anchor="end">1e{e}</text>')
    kinds = {index: kind for _, _, _, points in series[:1] for index, kind, _ in points}
    for index in layers:
        out.append(f'<text x="{x(index):.1f}" y="{height - bottom + 16}" text-anchor="middle">{index}</text>')
        out.append(f'<text x="{x(index):.1f}" y="{height - bottom + 30}" text-anchor="middle" fill="#666">{kinds.get(index, "")}</text>')
    out.append(f'<text x="{(left + width - right) / 2}" y="{height - 12}" text-anchor="middle">model.layers[i]: dense and tanh 4 times (ReLU for He), then dense 10</text>')
    out.append(f'<text x="16" y="{(top + height - bottom) / 2}" transform="rotate(-90 16 {(top + height - bottom) / 2})" text-anchor="middle">std of the output (log)</text>')
    for row, (name, label, colour, points) in enumerate(series):
        path = " ".join(f"{x(index):.1f},{y(std):.1f}" for index, _, std in points)
        out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"><title>{name}</title></polyline>')
        for index, _, std in points:
            out.append(f'<circle cx="{x(index):.1f}" cy="{y(std):.1f}" r="3" fill="{colour}"><title>{name} layer {index}: {std:.3g}</title></circle>')
        ly = top + 10 + row * 20
        out.append(f'<line x1="{width - right + 15}" x2="{width - right + 40}" y1="{ly}" y2="{ly}" stroke="{colour}" stroke-width="2"/>')
        out.append(f'<text x="{width - right + 46}" y="{ly + 4}">{label}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, ".build", "release", "cohort")
    with tempfile.TemporaryDirectory() as directory:
        series = [(name, label, colour, first_step_stds(binary, name, directory)) for name, label, colour in CONFIGS]
    for name, _, _, points in series:
        print(name, " ".join(f"{index}:{std:.3g}" for index, _, std in points))
    with open(OUTPUT, "w") as file:
        file.write(svg(series))
    print(f"wrote {OUTPUT}")


if __name__ == "__main__":
    main()
