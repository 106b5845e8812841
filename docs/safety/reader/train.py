#!/usr/bin/env python3
"""Train the emergency detector's learned reader (Sources/MedViewSafety/Data/reader.json).

The reader is a multinomial logistic regression over the features the detector itself computes
(`medview safety features`, EmergencyDetector.features(of:)), so training and the app see the
same thing. It needs scikit-learn and numpy (pip install scikit-learn numpy); the app does not.

    # build the CLI, then train on every labelled set and write the model
    swift build --product medview
    python3 docs/safety/reader/train.py --medview .build/debug/medview \
        --out Sources/MedViewSafety/Data/reader.json SET.jsonl [SET.jsonl ...]

    # hold one set out: train on the others and print its figures (nothing written)
    python3 docs/safety/reader/train.py --medview .build/debug/medview --validate HELD.jsonl SET.jsonl ...

The training sets are listed in docs/safety/reader/README.md with who wrote them. A set that
has been trained on can no longer say how good the detector is: only a set written later by
someone who has not seen the system can.
"""
import argparse, json, os, subprocess, sys
from collections import Counter

SCHEMA = 3          # EmergencyReader.schema in Swift: the feature layout
C = 1.0             # inverse regularisation strength
MIN_DF = 2          # a feature must occur in at least this many training messages
PRUNE = 0.02        # weights smaller than this are left out of the model file
THRESHOLD = 0.5     # alert when P(no emergency) is below this
FAMILIES = {"w", "b", "c", "f", "f2", "n", "g", "k", "p"}  # feature families used (the prefix before ':')


def rows(medview, path):
    out = subprocess.run([medview, "safety", "features", "--emergency", path], check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def label(r):
    return r.get("expect") or "none"


def train(train_rows):
    import numpy as np
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.linear_model import LogisticRegression
    df = Counter(f for r in train_rows for f in set(r["features"]) if f.split(":", 1)[0] in FAMILIES)
    keep = {f for f, n in df.items() if n >= MIN_DF}
    vec = DictVectorizer()
    X = vec.fit_transform([{f: 1 for f in r["features"] if f in keep} for r in train_rows])
    y = [label(r) for r in train_rows]
    clf = LogisticRegression(C=C, max_iter=10000).fit(X, y)
    classes = list(clf.classes_)
    order = [classes.index("none")] + [i for i, c in enumerate(classes) if c != "none"]
    W = clf.coef_[order]
    W[np.abs(W) < PRUNE] = 0
    b = clf.intercept_[order]
    names = vec.get_feature_names_out()
    weights = {}
    for j, name in enumerate(names):
        col = [[i, round(float(W[i, j]), 4)] for i in range(W.shape[0]) if W[i, j] != 0]
        if col:
            weights[name] = col
    return {
        "schema": SCHEMA,
        "classes": [classes[i] for i in order],
        "bias": [round(float(x), 4) for x in b],
        "threshold": THRESHOLD,
        "weights": dict(sorted(weights.items())),
    }


def predict(model, r):
    import math
    logits = list(model["bias"])
    for f in r["features"]:
        for c, w in model["weights"].get(f, []):
            logits[c] += w
    top = max(logits)
    e = [math.exp(x - top) for x in logits]
    s = sum(e)
    p = [x / s for x in e]
    reader = None
    if p[0] < model["threshold"]:
        reader = model["classes"][max(range(1, len(p)), key=lambda i: p[i])]
    # The reader only adds alerts; it never withdraws a rule's (docs/SAFETY.md says why).
    return r.get("rules") or reader, reader, p[0]


def report(model, held):
    tp = fp = fn = cat = 0
    per = Counter()
    for r in held:
        final, _, _ = predict(model, r)
        if not r.get("rules") and final:
            per["added " + ("true alert " if r.get("expect") else "FALSE alert ") + final] += 1
        e = r.get("expect")
        if e and final:
            tp += 1
            if final == e or final in r.get("also", []):
                cat += 1
        elif e:
            fn += 1
            per["missed " + e] += 1
        elif final:
            fp += 1
            per["false " + final] += 1
    rules_tp = sum(1 for r in held if r.get("expect") and r.get("rules"))
    rules_fp = sum(1 for r in held if not r.get("expect") and r.get("rules"))
    pos = tp + fn
    print(f"held-out {len(held)} messages, {pos} emergencies")
    print(f"  rules alone:  recall {rules_tp / pos:.1%}  precision {rules_tp / max(rules_tp + rules_fp, 1):.1%}")
    print(f"  with reader:  recall {tp / pos:.1%}  precision {tp / max(tp + fp, 1):.1%}  right category {cat / pos:.1%}")
    for k, n in sorted(per.items()):
        print(f"    {k}: {n}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--medview", required=True, help="the medview binary (for `safety features`)")
    ap.add_argument("--out", help="write the model here")
    ap.add_argument("--validate", help="hold this set out and print its figures")
    ap.add_argument("--threshold", type=float, default=THRESHOLD, help="alert when P(no emergency) is below this")
    ap.add_argument("sets", nargs="+")
    a = ap.parse_args()
    train_rows = []
    sources = []
    for path in a.sets:
        rs = rows(a.medview, path)
        train_rows += rs
        sources.append({"file": os.path.relpath(path), "messages": len(rs)})
        print(f"{path}: {len(rs)} messages", file=sys.stderr)
    model = train(train_rows)
    model["threshold"] = a.threshold
    model["trainedOn"] = sources
    print(f"{len(model['weights'])} features kept, {sum(len(v) for v in model['weights'].values())} weights", file=sys.stderr)
    if a.validate:
        report(model, rows(a.medview, a.validate))
    if a.out:
        with open(a.out, "w") as f:
            json.dump(model, f, separators=(",", ":"), sort_keys=False)
            f.write("\n")


if __name__ == "__main__":
    main()
