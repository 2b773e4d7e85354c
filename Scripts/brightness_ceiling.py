#!/usr/bin/env python3
"""How well can any detector see eval-shift's brightness shifts on a dataset? An upper bound
from the mean grey level alone (README, "Whole-image shift").

    python3 -m venv /tmp/ceiling && /tmp/ceiling/bin/pip install numpy pillow
    /tmp/ceiling/bin/python Scripts/brightness_ceiling.py ../shared/data/magnetic_tile

Prints the mean grey level of train/good per file-name prefix (magnetic_tile's exp1 ... exp6
are exposure settings), then, for brightness -40% and +40% (every value times 0.6, or 1.4
clipped, as eval-shift makes them), the ROC-AUC of two scores of an image's mean grey level
on test/good against its shifted copies, both with densities estimated on train/good only
(Gaussian kernels on the log mean):
- one-class: minus the density of good images' means (what a detector fitted on good images
  alone could do with the mean);
- likelihood ratio: the density of shifted good images' means over that of good images'
  (the best any score of the mean can do, knowing the shift in advance).
"""
import collections
import glob
import os
import sys

import numpy as np
from PIL import Image


def grey(path):
    return np.asarray(Image.open(path).convert("L"), dtype=np.float64)


def shifted_mean(image, factor):
    return np.clip(np.round(image * factor), 0, 255).mean()


def density(x, samples, bandwidth=0.05):
    z = (np.log(x)[:, None] - np.log(samples)[None, :]) / bandwidth
    return np.exp(-0.5 * z * z).mean(axis=1) + 1e-300


def roc_auc(positives, negatives):
    greater = (positives[:, None] > negatives[None, :]).mean()
    ties = (positives[:, None] == negatives[None, :]).mean()
    return greater + 0.5 * ties


def main(root):
    train = sorted(glob.glob(os.path.join(root, "train/good/*")))
    test = sorted(glob.glob(os.path.join(root, "test/good/*")))
    train_images = [grey(p) for p in train]
    test_images = [grey(p) for p in test]
    groups = collections.defaultdict(list)
    for path, image in zip(train, train_images):
        groups[os.path.basename(path).split("_")[0]].append(image.mean())
    print("train/good mean grey by file-name prefix: images, mean, min, max")
    for name, means in sorted(groups.items()):
        print("  %-8s %4d %6.1f %6.1f %6.1f" % (name, len(means), np.mean(means), min(means), max(means)))
    good = np.array([i.mean() for i in train_images])
    inliers = np.array([i.mean() for i in test_images])
    for label, factor in (("brightness-40", 0.6), ("brightness+40", 1.4)):
        outliers = np.array([shifted_mean(i, factor) for i in test_images])
        reference = np.array([shifted_mean(i, factor) for i in train_images])
        one_class = roc_auc(-density(outliers, good), -density(inliers, good))
        ratio = roc_auc(density(outliers, reference) / density(outliers, good),
                        density(inliers, reference) / density(inliers, good))
        print("%s: ROC-AUC from the mean grey level, one-class %.3f, likelihood ratio %.3f" % (label, one_class, ratio))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/magnetic_tile")
