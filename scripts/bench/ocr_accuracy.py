"""Accuracy of int8 allocations on a pretrained text recognizer (PP-OCRv4, from PyPI's
rapidocr-onnxruntime wheel), measured on rendered, labeled words: docs/evaluation.md,
"Accuracy on pretrained models".

    python scripts/bench/ocr_accuracy.py [--test 200] [--stage-test 100] [--calibration 16]

Needs the ``lalarand`` Python package (crates/python), numpy, Pillow, onnx (to read the
dictionary once) and pip (to download the wheel into .cache/ocr). Steps, all seeded:

1. render words and numbers (``ocr_data.render_words``): calibration samples (seed 1), test
   samples (seed 2);
2. ``lalarand.profile`` the recognizer at x=1,3,48,320 in cpu-fp32 and cpu-int8, calibrated on
   the calibration samples, which also measure each stage's label-free int8 cost (the
   profile's ``int8_accuracy_cost``, 100 x (1 - cosine) of the output);
3. fp32 exact match and character error rate (CTC greedy decoding with the model's dictionary);
4. each stage's labeled int8 cost: the exact-match drop (and CER rise) when it alone runs int8
   (``lalarand.run_stages``), on the first ``--stage-test`` test samples; Spearman's rank
   correlation with the label-free cost;
5. ``lalarand`` allocations of one task (the recognizer, on examples/mnist/platform.toml's two
   CPU cores) at budgets 0.1, 0.4, 1 and 2 pp and unbounded, its deadline the shortest (in 5 %
   steps of the all-fp32 chain) that int8 makes schedulable, so that int8 is needed; each allocation's
   int8 stages run on the test samples: measured drop next to the budget and to the sum of the
   per-stage costs (label-free, as allocated; labeled).
"""

import argparse
import json
import pathlib
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import ocr_data  # noqa: E402

import lalarand  # noqa: E402

BUDGETS = (0.1, 0.4, 1.0, 2.0)
UNBOUNDED = 1e9  # a budget no sum of costs reaches
PLATFORM = ocr_data.ROOT / "examples" / "mnist" / "platform.toml"


def spearman(a, b):
    """Spearman's rank correlation (average ranks for ties)."""

    def ranks(x):
        x = np.asarray(x, dtype=float)
        order = np.argsort(x, kind="stable")
        r = np.empty(len(x))
        r[order] = np.arange(len(x))
        for v in np.unique(x):
            tied = x == v
            r[tied] = r[tied].mean()
        return r

    ra, rb = ranks(a), ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


class Recognizer:
    """The profiled recognizer's stages on labeled samples."""

    def __init__(self, model, profile, chars, samples, threads=1):
        self.model, self.profile, self.chars, self.threads = model, profile, chars, threads
        self.truth = [t for t, _ in samples]
        self.inputs = [x[None] for _, x in samples]

    def read(self, modes, n=None):
        """(exact match %, CER %, decoded strings) with one mode per stage, on the first n samples."""
        inputs = self.inputs[:n]
        outputs = lalarand.run_stages(self.model, self.profile, inputs, modes, threads=self.threads)
        text = [ocr_data.ctc_greedy(o, self.chars) for o in outputs]
        exact, cer = ocr_data.scores(text, self.truth[: len(inputs)])
        return exact, cer, text


def modes_with(layers, int8):
    return ["cpu-int8" if name in int8 else "cpu-fp32" for name in layers]


def profile_recognizer(model, calibration, out, runs):
    return lalarand.profile(model, out, input_shapes={"x": [1, 3, ocr_data.REC_HEIGHT, ocr_data.REC_WIDTH]},
                            modes=["cpu-fp32", "cpu-int8"], calibration=calibration,
                            runs=runs, min_cold_runs=1, warmup=2)


def tight_period_ms(profile, fp32_ms):
    """The shortest period (= deadline), in steps of 5 % of the all-fp32 chain's WCET, at which
    `lalarand` with an unbounded budget proves the task: int8 is needed, and enough of it helps."""
    shortest = None
    for percent in range(95, 0, -5):
        if not allocate(profile, fp32_ms * percent / 100, UNBOUNDED)[0].schedulable:
            break
        shortest = fp32_ms * percent / 100
    return shortest


def fp32_chain_ms(profile_json):
    return sum(layer["modes"]["cpu-fp32"]["wcet_us"] for layer in profile_json["layers"]) / 1000.0


def allocate(profile, period_ms, budget):
    system = lalarand.System(lalarand.Platform.load(PLATFORM), [lalarand.Task("ocr", profile, period_ms)])
    result = system.allocate("lalarand", budget=budget)
    modes = [entry.split("@")[0] for entry in result.allocation.layers["ocr"]]
    return result, modes


def allocation_row(recognizer, profile, layers, label_free, labeled, baseline, period_ms, budget):
    """The `lalarand` allocation at ``budget`` (or, for ``"all-int8"``, every stage offered in
    int8), its int8 stages run on the test samples: the measured exact-match drop and CER rise
    against ``baseline`` (fp32's exact match and CER), next to the sums of the per-stage costs
    of those stages (label-free, what the allocator counted; labeled where ``labeled`` has them)."""
    schedulable = allocated_cost = None
    if budget == "all-int8":
        modes = ["cpu-int8" if label_free[n] is not None else "cpu-fp32" for n in layers]
    else:
        result, modes = allocate(profile, period_ms, budget)
        schedulable, allocated_cost = result.schedulable, result.analysis.accuracy_cost_pp
    int8 = [n for n, m in zip(layers, modes) if m == "cpu-int8"]
    exact, cer, _ = recognizer.read(modes_with(layers, set(int8)))
    labeled = labeled or {}
    return {
        "budget": budget, "schedulable": schedulable, "int8_stages": len(int8), "int8": int8,
        "allocated_cost": allocated_cost, "label_free_sum": sum(label_free[n] for n in int8),
        "labeled_sum_exact": sum(labeled[n]["exact_drop_pp"] for n in int8 if n in labeled),
        "labeled_sum_cer": sum(labeled[n]["cer_rise_pp"] for n in int8 if n in labeled),
        "exact_drop_pp": baseline[0] - exact, "cer_rise_pp": cer - baseline[1],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calibration", type=int, default=16, help="calibration samples (seed 1)")
    parser.add_argument("--test", type=int, default=200, help="test samples (seed 2)")
    parser.add_argument("--stage-test", type=int, default=100, help="test samples per stage's labeled cost")
    parser.add_argument("--runs", type=int, default=10, help="timed runs per stage and mode of the profile")
    parser.add_argument("--out", type=pathlib.Path, default=None, help="write every number as JSON here")
    parser.add_argument("--work", type=pathlib.Path, default=None, help="folder for the profile (default: temporary)")
    args = parser.parse_args()
    started = time.monotonic()
    work = args.work or pathlib.Path(tempfile.mkdtemp(prefix="ocr-accuracy-"))
    work.mkdir(parents=True, exist_ok=True)

    rec, _, chars = ocr_data.fetch_models()
    calibration = np.stack([x[None] for _, x in ocr_data.render_words(args.calibration, seed=1)])
    test = ocr_data.render_words(args.test, seed=2)
    t = time.monotonic()
    profile = profile_recognizer(rec, calibration, work / "rec.json", args.runs)
    profile_s = time.monotonic() - t
    pj = json.loads(profile.to_json())
    layers = [l["name"] for l in pj["layers"]]
    label_free = {l["name"]: l.get("int8_accuracy_cost") for l in pj["layers"]}
    print(f"profile: {len(layers)} stages, {profile_s:.0f} s; int8 cost kind {pj.get('int8_cost_kind')}; "
          f"refused in int8: {[n for n, c in label_free.items() if c is None]}")

    recognizer = Recognizer(rec, profile, chars, test)
    fp32 = ["cpu-fp32"] * len(layers)
    exact, cer, text = recognizer.read(fp32)
    print(f"fp32 on {args.test} test words: exact match {exact:.1f} %, CER {cer:.2f} %")
    print("misread:", [(p, t) for p, t in zip(text, recognizer.truth) if p != t][:10])
    stage_exact, stage_cer, _ = recognizer.read(fp32, args.stage_test)

    labeled = {}
    for name in layers:
        if label_free[name] is None:
            continue
        e, c, _ = recognizer.read(modes_with(layers, {name}), args.stage_test)
        labeled[name] = {"exact_drop_pp": stage_exact - e, "cer_rise_pp": c - stage_cer}
    names = list(labeled)
    rho_exact = spearman([label_free[n] for n in names], [labeled[n]["exact_drop_pp"] for n in names])
    rho_cer = spearman([label_free[n] for n in names], [labeled[n]["cer_rise_pp"] for n in names])
    print(f"per stage ({len(names)} in int8, {args.stage_test} samples): Spearman label-free vs exact-match "
          f"drop {rho_exact:.2f}, vs CER rise {rho_cer:.2f}")
    top = sorted(names, key=lambda n: -label_free[n])[:8]
    for n in top:
        print(f"  {n}: label-free {label_free[n]:.3f}, exact drop {labeled[n]['exact_drop_pp']:.1f} pp, "
              f"CER rise {labeled[n]['cer_rise_pp']:.2f} pp")

    fp32_ms = fp32_chain_ms(pj)
    period = tight_period_ms(profile, fp32_ms)
    if period is None:
        sys.exit(f"no period below the all-fp32 chain's {fp32_ms:.1f} ms is schedulable even with int8: int8 "
                 "does not help on this machine's profile, so no budget can bind")
    print(f"task ocr: period = deadline {period:.1f} ms (all-fp32 chain {fp32_ms:.1f} ms WCET)")
    rows = []
    for budget in BUDGETS + (UNBOUNDED, "all-int8"):
        row = allocation_row(recognizer, profile, layers, label_free, labeled, (exact, cer), period, budget)
        rows.append(row)
        print(f"budget {budget}: {row['int8_stages']} int8 stages, schedulable {row['schedulable']}; sum of "
              f"label-free costs {row['label_free_sum']:.2f}; sum of labeled drops {row['labeled_sum_exact']:.1f} pp; "
              f"measured exact-match drop {row['exact_drop_pp']:.1f} pp, CER rise {row['cer_rise_pp']:.2f} pp")
    total_s = time.monotonic() - started
    print(f"total {total_s:.0f} s")
    if args.out:
        args.out.write_text(json.dumps({
            "stages": len(layers), "calibration": args.calibration, "test": args.test, "stage_test": args.stage_test,
            "fp32": {"exact": exact, "cer": cer}, "label_free": label_free, "labeled": labeled,
            "spearman_exact": rho_exact, "spearman_cer": rho_cer, "period_ms": period, "allocations": rows,
            "profile_s": profile_s, "total_s": total_s,
        }, indent=1))


if __name__ == "__main__":
    main()
