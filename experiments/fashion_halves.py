"""Split Fashion-MNIST's test images into two disjoint halves (even / odd index) as npz files.

A rule may then meta-train on tasks from half A (a task mixture with EMNIST) and be scored on half B,
images it never saw. The data directory holds only Fashion-MNIST's test split (../shared/data/README.md).
Usage: python experiments/fashion_halves.py OUT_DIR   (writes fashion-mnist-test-a.npz and -b.npz)
"""

import sys
from pathlib import Path

import numpy as np

from evoplastic.families.paper.data import load_dataset


def main(out: Path) -> None:
    data = load_dataset("fashion-mnist", split="test")
    images, labels = data.images.numpy(), data.labels.numpy()
    out.mkdir(parents=True, exist_ok=True)
    for half, start in (("a", 0), ("b", 1)):
        path = out / f"fashion-mnist-test-{half}.npz"
        pixels = np.rint(images[start::2] * 255).astype(np.uint8)  # the 0-255 values the IDX file holds
        np.savez_compressed(path, images=pixels, labels=labels[start::2])
        print(f"{path}: {len(labels[start::2])} images")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
