"""Fit and check the calibration of a search hit's ``relativity`` (``memos_mcp.core.relevance``).

    .venv/bin/python benchmarks/relevance_calibration.py --data ../shared/data/locomo/locomo10_dev.json \
        [--out benchmarks/relevance]

Labelled pairs from the LoCoMo development split, each question (categories 1-4) against turns
embedded as the benchmark stores them ("speaker: text", the default embedder):
- positive: a turn the answer key cites as the question's evidence;
- related negative: any other turn of the same conversation (same people, same topics, not cited);
- unrelated negative: a turn of another conversation.
A logistic on the cosine (the best over ``query_variants``) is fitted with positives weighing as much as
negatives, and the two kinds of negative half each, on samples 0-2; samples 3-4 are held out. Figures:
held-out ROC AUC, and at the thresholds 0.3 / 0.45 / 0.6 the share of evidence kept (recall), of related
and unrelated turns kept, and the precision with as many positives as negatives of each kind (the real
share of evidence among a conversation's turns is under 1 %). Prints the fitted slope and bias, which
``core.relevance`` holds as constants. Ranking is not involved: the fused ranking score stays as it is.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from memos_mcp.bench.locomo import CATEGORIES, evidence_ids, machine, publish, turn_text, turns_of
from memos_mcp.config import Settings
from memos_mcp.core import relevance
from memos_mcp.core.factory import build_embedder

Array = npt.NDArray[np.float64]
THRESHOLDS = (0.3, 0.45, 0.6)
FIT_SAMPLES = 3


def pairs(data: list[dict[str, Any]]) -> dict[str, Array]:
    """Cosines and labels: columns sample, label (1 evidence, 0 same conversation, -1 other conversation)."""
    embedder = build_embedder(Settings())
    turns: list[tuple[list[str], Array]] = []
    questions: list[list[tuple[set[str], Array]]] = []
    for sample in data:
        every = [t for _, session in turns_of(sample) for t in session]
        ids = [t["dia_id"] for t in every]
        turns.append((ids, np.asarray(embedder.embed([f"{t['speaker']}: {turn_text(t)}" for t in every]))))
        asked = [(q, evidence_ids(q.get("evidence", []), set(ids))) for q in sample["qa"]
                 if int(q.get("category", 0)) in CATEGORIES]
        questions.append([(set(ev), np.asarray(embedder.embed(relevance.query_variants(q["question"]))))
                          for q, ev in asked if ev])
    sample_col, label_col, cosine_col = [], [], []
    for i, questioned in enumerate(questions):
        for j, (ids, vectors) in enumerate(turns):
            for evidence, variants in questioned:
                cosines = (variants @ vectors.T).max(axis=0)
                sample_col.append(np.full(len(ids), i))
                label_col.append(np.array([1 if i == j and d in evidence else (0 if i == j else -1) for d in ids]))
                cosine_col.append(cosines)
    return {"sample": np.concatenate(sample_col).astype(np.float64),
            "label": np.concatenate(label_col).astype(np.float64),
            "cosine": np.concatenate(cosine_col).astype(np.float64)}


def fit(cosine: Array, positive: Array, weight: Array) -> tuple[float, float]:
    """Weighted logistic regression of ``positive`` on ``cosine`` by Newton's method: (slope, bias)."""
    x = np.c_[cosine, np.ones(len(cosine))]
    beta = np.zeros(2)
    for _ in range(100):
        p = 1 / (1 + np.exp(-x @ beta))
        step = np.linalg.solve((x * (weight * p * (1 - p))[:, None]).T @ x + 1e-9 * np.eye(2),
                               x.T @ (weight * (p - positive)))
        beta -= step
        if np.abs(step).max() < 1e-10:
            break
    return float(beta[0]), float(beta[1])


def weights(label: Array, chosen: npt.NDArray[np.bool_]) -> Array:
    """Positives half the weight, related and unrelated negatives a quarter each, within ``chosen``."""
    w = np.zeros(len(label))
    for value, share in ((1, 0.5), (0, 0.25), (-1, 0.25)):
        rows = chosen & (label == value)
        w[rows] = share / max(1, int(rows.sum()))
    return w


def auc(score: Array, positive: Array) -> float:
    order = np.argsort(score, kind="stable")
    ranks = np.empty(len(score))
    ranks[order] = np.arange(1, len(score) + 1)
    n1 = positive.sum()
    n0 = len(positive) - n1
    return float((ranks[positive == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def measure(data: list[dict[str, Any]]) -> dict[str, Any]:
    found = pairs(data)
    label, cosine = found["label"], found["cosine"]
    train, held = found["sample"] < FIT_SAMPLES, found["sample"] >= FIT_SAMPLES
    slope, bias = fit(cosine[train], (label[train] == 1).astype(np.float64), weights(label, train)[train])
    score = 1 / (1 + np.exp(-(slope * cosine + bias)))
    shipped = np.array([relevance.calibrated(c) for c in cosine[held]])
    at: dict[str, dict[str, float]] = {}
    for t in THRESHOLDS:
        kept = shipped >= t
        recall = float(kept[label[held] == 1].mean())
        related = float(kept[label[held] == 0].mean())
        unrelated = float(kept[label[held] == -1].mean())
        at[f"{t:.2f}"] = {"recall": recall, "related_kept": related, "unrelated_kept": unrelated,
                          "precision_vs_related": recall / (recall + related) if recall + related else 0.0,
                          "precision_vs_unrelated": recall / (recall + unrelated) if recall + unrelated else 0.0,
                          "cosine": (np.log(t / (1 - t)) - relevance.BIAS) / relevance.SLOPE}
    related_or_not = label[held] >= 0
    return {
        "fit": {"slope": slope, "bias": bias, "samples": FIT_SAMPLES},
        "shipped": {"slope": relevance.SLOPE, "bias": relevance.BIAS},
        "held_out": {"samples": len(data) - FIT_SAMPLES,
                     "positives": int((label[held] == 1).sum()), "related": int((label[held] == 0).sum()),
                     "unrelated": int((label[held] == -1).sum()),
                     "auc_vs_related": auc(score[held][related_or_not], (label[held][related_or_not] == 1) * 1.0),
                     "auc_vs_unrelated": auc(score[held][label[held] != 0], (label[held][label[held] != 0] == 1) * 1.0),
                     "thresholds": at},
    }


def markdown(report: dict[str, Any]) -> str:
    held, fitted, shipped = report["held_out"], report["fit"], report["shipped"]
    m = report.get("machine", {})
    rows = [f"| {t} | {v['cosine']:.3f} | {v['recall']:.3f} | {v['related_kept']:.3f} | {v['unrelated_kept']:.4f} "
            f"| {v['precision_vs_related']:.3f} | {v['precision_vs_unrelated']:.3f} |"
            for t, v in held["thresholds"].items()]
    return "\n".join([
        "# Relevance calibration (`relativity`)", "",
        f"Data: {report['data']['file']}, questions of categories 1-4 against turns; fitted on samples "
        f"0-{fitted['samples'] - 1}, checked on the {held['samples']} held-out samples. "
        f"Machine: {m.get('cpu')}, {m.get('cores')} cores.", "",
        f"relativity = 1 / (1 + exp(-({shipped['slope']:.3f} * cosine {shipped['bias']:+.3f})))"
        f" (this run's fit: slope {fitted['slope']:.3f}, bias {fitted['bias']:.3f})", "",
        f"Held-out pairs: {held['positives']} evidence turns, {held['related']} related (same conversation, "
        f"not cited), {held['unrelated']} unrelated (another conversation).",
        f"ROC AUC: evidence vs related {held['auc_vs_related']:.3f}, evidence vs unrelated "
        f"{held['auc_vs_unrelated']:.3f}.", "",
        "| threshold | cosine | evidence kept (recall) | related kept | unrelated kept | precision vs related "
        "(1:1) | precision vs unrelated (1:1) |",
        "|---|---|---|---|---|---|---|", *rows, "",
        "Precision is at equal numbers of evidence and other turns: among all the turns of a conversation "
        "under 1 % are a question's evidence, so a threshold alone cannot make a short list precise; "
        "the ranking does that.",
    ])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    data = json.loads(args.data.read_text(encoding="utf-8"))
    report = measure(data)
    report["data"] = {"file": args.data.name, "samples": len(data)}
    report["machine"] = machine()
    publish(report, markdown(report), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
