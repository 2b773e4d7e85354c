#!/usr/bin/env python3
"""Records scikit-learn's answers for anomap's image-level shift detectors (run once; the
output is committed as Fixtures/shift/oracle.json and read by Tests/ModelsTests/ShiftModelTests).

    python3 -m venv /tmp/oracle && /tmp/oracle/bin/pip install numpy scikit-learn==1.9.1
    /tmp/oracle/bin/python Scripts/shift_oracle.py Fixtures/shift/oracle.json

Data: three seeded Gaussian clusters in 6 dimensions (240 training vectors) and 60 test
vectors (40 from the clusters, 20 scattered far from them).
- GaussianMixture (full and diagonal, reg_covar 1e-3): parameters, score_samples on the test
  vectors, the mean training log-likelihood, and BIC for 1..5 components.
- IsolationForest (200 trees, 240 samples each): score_samples on the test vectors, averaged
  over 10 seeds (the forest is random; anomap is checked by rank correlation against this).
- OneClassSVM (RBF kernel, gamma 0.05, nu 0.1, tol 1e-7): decision_function on the test
  vectors, the offset rho and the number of support vectors.
"""
import json
import sys

import numpy as np
from sklearn.ensemble import IsolationForest
from sklearn.mixture import GaussianMixture
from sklearn.svm import OneClassSVM

rng = np.random.default_rng(7)
d = 6
centres = rng.normal(0, 4, size=(3, d))
scales = [0.6, 1.0, 1.5]
train = np.concatenate([rng.normal(centres[k], scales[k], size=(80, d)) for k in range(3)])
inside = np.concatenate([rng.normal(centres[k], scales[k], size=(14 if k < 2 else 12, d)) for k in range(3)])
outside = rng.uniform(-14, 14, size=(20, d))
test = np.concatenate([inside, outside])

out = {"dimension": d, "train": train.round(6).tolist(), "test": test.round(6).tolist(), "gmm": {}}
for cov in ["full", "diag"]:
    bics = []
    for k in range(1, 6):
        g = GaussianMixture(n_components=k, covariance_type=cov, reg_covar=1e-3, random_state=0, n_init=5,
                            max_iter=500, tol=1e-6).fit(train)
        bics.append(float(g.bic(train)))
    g = GaussianMixture(n_components=3, covariance_type=cov, reg_covar=1e-3, random_state=0, n_init=5,
                        max_iter=500, tol=1e-6).fit(train)
    out["gmm"]["full" if cov == "full" else "diagonal"] = {
        "weights": g.weights_.tolist(),
        "means": g.means_.ravel().tolist(),
        "covariances": g.covariances_.ravel().tolist(),
        "test_log_likelihood": g.score_samples(test).tolist(),
        "train_mean_log_likelihood": float(g.score(train)),
        "bic": bics,
    }
scores = np.mean([IsolationForest(n_estimators=200, max_samples=240, random_state=s).fit(train).score_samples(test)
                  for s in range(10)], axis=0)
out["iforest"] = {"trees": 200, "sample_size": 240, "test_score_samples": scores.tolist()}
svm = OneClassSVM(kernel="rbf", gamma=0.05, nu=0.1, tol=1e-7).fit(train)
out["ocsvm"] = {"gamma": 0.05, "nu": 0.1, "test_decision": svm.decision_function(test).tolist(),
                "rho": float(-svm.intercept_[0]), "support_vectors": int(len(svm.support_))}
with open(sys.argv[1], "w") as f:
    json.dump(out, f)
print("wrote", sys.argv[1])
