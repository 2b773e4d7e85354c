#!/usr/bin/env python3
"""Records reference metric values once (committed as Fixtures/metrics/reference.json).

Image-level values come from scikit-learn (roc_auc_score, average_precision_score,
precision_recall_curve); AUPRO from a plain independent implementation: connected regions by
scipy.ndimage.label (8-connectivity), a dense threshold sweep, trapezoidal integration of
PRO over FPR up to 0.3 with linear interpolation at 0.3, divided by 0.3. Inputs are random
but seeded and stored in the file, so the Swift tests read exactly what was scored here.

Usage: metrics_reference.py OUT.json   (needs numpy, scipy, scikit-learn)
"""
import json
import sys

import numpy as np
from scipy import ndimage
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score


def image_case(rng, n, ties):
    labels = rng.random(n) < 0.35
    scores = rng.normal(0, 1, n) + 1.2 * labels
    if ties:
        scores = np.round(scores, 1)
    precision, recall, thresholds = precision_recall_curve(labels, scores)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    best = int(np.argmax(f1[:-1]))
    return {
        "scores": scores.tolist(), "labels": labels.astype(int).tolist(),
        "auroc": roc_auc_score(labels, scores), "average_precision": average_precision_score(labels, scores),
        "f1_max": float(f1[best]), "f1_threshold": float(thresholds[best]),
    }


def aupro_reference(maps, masks, max_fpr=0.3, steps=5000):
    structure = np.ones((3, 3), dtype=int)
    regions = []  # (image index, boolean region mask)
    for img, m in enumerate(masks):
        labeled, count = ndimage.label(m, structure=structure)
        regions += [(img, labeled == k) for k in range(1, count + 1)]
    maps = np.stack(maps)
    negatives = ~np.stack(masks)
    lo, hi = maps.min(), maps.max()
    points = []
    for t in np.linspace(hi, lo, steps):
        predicted = maps >= t
        fpr = (predicted & negatives).sum() / negatives.sum()
        pros = [(predicted[img] & region).sum() / region.sum() for img, region in regions]
        points.append((fpr, np.mean(pros)))
    points = [(0.0, 0.0)] + sorted(points)
    fprs = np.array([p[0] for p in points])
    pros = np.array([p[1] for p in points])
    keep = fprs <= max_fpr
    x, y = list(fprs[keep]), list(pros[keep])
    nxt = np.searchsorted(fprs, max_fpr, side="right")
    if nxt < len(fprs) and x[-1] < max_fpr:
        x0, y0, x1, y1 = fprs[nxt - 1], pros[nxt - 1], fprs[nxt], pros[nxt]
        x.append(max_fpr)
        y.append(y0 + (y1 - y0) * (max_fpr - x0) / (x1 - x0))
    return float(np.trapezoid(y, x) / max_fpr)


def pixel_case(rng, images=5, h=24, w=32):
    maps, masks = [], []
    for k in range(images):
        mask = np.zeros((h, w), dtype=bool)
        for _ in range(rng.integers(0, 3)):
            cy, cx, r = rng.integers(3, h - 3), rng.integers(3, w - 3), rng.integers(1, 4)
            yy, xx = np.mgrid[0:h, 0:w]
            mask |= (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        score = rng.normal(0, 1, (h, w)) + 1.5 * mask + 0.5 * rng.random() * mask
        maps.append(np.round(score.astype(np.float32), 3))
        masks.append(mask)
    flat_maps = np.concatenate([m.ravel() for m in maps])
    flat_masks = np.concatenate([m.ravel() for m in masks])
    return {
        "width": w, "height": h,
        "maps": [m.ravel().tolist() for m in maps], "masks": [m.ravel().astype(int).tolist() for m in masks],
        "pixel_auroc": roc_auc_score(flat_masks, flat_maps),
        "aupro_0_3": aupro_reference(maps, masks),
        "regions": int(sum(ndimage.label(m, structure=np.ones((3, 3)))[1] for m in masks)),
    }


def main(out):
    rng = np.random.default_rng(20261123)
    data = {"image": [image_case(rng, 300, False), image_case(rng, 301, True), image_case(rng, 40, True)],
            "pixel": [pixel_case(rng), pixel_case(rng, images=8)]}
    with open(out, "w") as f:
        json.dump(data, f)
    print(out, [round(c["auroc"], 4) for c in data["image"]], [round(c["aupro_0_3"], 4) for c in data["pixel"]])


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "Fixtures/metrics/reference.json")
