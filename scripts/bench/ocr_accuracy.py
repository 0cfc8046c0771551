"""Accuracy of int8 allocations on pretrained models (PP-OCRv4's text recognizer and detector,
from PyPI's rapidocr-onnxruntime wheel), measured on rendered, labeled text: docs/evaluation.md,
"Accuracy on pretrained models".

    python scripts/bench/ocr_accuracy.py [--models rec,det] [--work DIR [--reuse-profiles]]
        [--stage-costs-from result.json] [--out result.json]

Needs the ``lalarand`` Python package (crates/python), numpy, Pillow, onnx (to read the
dictionary once), scipy (the detector's connected regions) and pip (to download the wheel into
.cache/ocr). For each model, all seeded:

1. render labeled data (``ocr_data``): words and numbers for the recognizer (calibration seed 1,
   test seed 2), pages of words with their boxes for the detector (same seeds);
2. ``lalarand.profile`` it in cpu-fp32 and cpu-int8 (recognizer x=1,3,48,320 at layer
   granularity, detector x=1,3,320,640 at block granularity), calibrated on the calibration
   samples, which also measure each stage's label-free int8 cost (the profile's
   ``int8_accuracy_cost``: 100 x (1 - cosine) of the output to fp32's);
3. fp32 accuracy: the recognizer's exact match and character error rate (CTC greedy decoding
   with the model's dictionary), the detector's box recall and precision (IoU >= 0.5);
4. each stage's labeled int8 cost: the accuracy drop (and error rise) when it alone runs int8
   (``lalarand.run_stages``), on the first ``--stage-test`` test samples; Spearman's rank
   correlation with the label-free cost;
5. `lalarand` allocations of the model as one task on examples/mnist/platform.toml's two CPU
   cores, at budgets 0.1, 0.4, 1 and 2 pp and unbounded, its deadline the shortest (in 5 %
   steps of the all-fp32 chain's WCET) that int8 makes schedulable; each allocation's int8
   stages run on the test samples: the measured drop next to the budget and to the sums of the
   per-stage costs (label-free, what the allocator counted; labeled); and all-int8;
6. the same allocations checked end to end on a held-out labeled check set (seed 3, distinct
   from the test set): ``System.allocate(..., calibration=..., accuracy=...)`` with the model's
   accuracy as the metric, so the allocator repairs each until its measured accuracy drop on
   the check set is within the budget; each checked allocation then runs on the test set. And
   all-int8's drop on the check set, which the check compares with each budget. With
   ``--check-on test`` the check set is the test set itself.
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
    """Spearman's rank correlation (average ranks for ties); nan where one side is constant."""

    def ranks(x):
        x = np.asarray(x, dtype=float)
        r = np.empty(len(x))
        r[np.argsort(x, kind="stable")] = np.arange(len(x))
        for v in np.unique(x):
            r[x == v] = r[x == v].mean()
        return r

    ra, rb = ranks(a), ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


class Measured:
    """A profiled model's stages on labeled samples. ``read`` gives (accuracy %, error %,
    predictions): higher accuracy and lower error are better; ``score`` the same of outputs
    given."""

    def __init__(self, model, profile, samples, threads=1):
        self.model, self.profile, self.threads = model, profile, threads
        self.truth = [t for t, _ in samples]
        self.inputs = [x[None] for _, x in samples]

    def outputs(self, modes, n):
        return lalarand.run_stages(self.model, self.profile, self.inputs[:n], modes, threads=self.threads)

    def read(self, modes, n=None):
        return self.score(self.outputs(modes, n))

    def accuracy(self, task, outputs):
        """The metric of ``System.allocate(accuracy=...)``: accuracy % of all the samples."""
        assert len(outputs) == len(self.truth), (task, len(outputs), len(self.truth))
        return self.score(outputs)[0]


class Recognizer(Measured):
    """Accuracy: exact match; error: character error rate."""

    ACCURACY, ERROR = "exact match", "CER"

    def __init__(self, model, profile, chars, samples, threads=1):
        super().__init__(model, profile, samples, threads)
        self.chars = chars

    def score(self, outputs):
        text = [ocr_data.ctc_greedy(o, self.chars) for o in outputs]
        exact, cer = ocr_data.scores(text, self.truth[: len(text)])
        return exact, cer, text


class Detector(Measured):
    """Accuracy: box recall; error: 100 - box precision (the share of found boxes that match none)."""

    ACCURACY, ERROR = "box recall", "100 - precision"

    def score(self, outputs):
        found = [ocr_data.det_boxes(o) for o in outputs]
        recall, precision = ocr_data.box_recall(found, self.truth[: len(found)])
        return recall, 100.0 - precision, found


def modes_with(layers, int8):
    return ["cpu-int8" if name in int8 else "cpu-fp32" for name in layers]


def fp32_chain_ms(profile_json):
    return sum(layer["modes"]["cpu-fp32"]["wcet_us"] for layer in profile_json["layers"]) / 1000.0


def allocate(profile, period_ms, budget, checker=None):
    """The `lalarand` allocation at ``budget``; with ``checker`` (a Measured on the labeled
    check set, its inputs saved in ``checker.inputs_file``), checked end to end on its accuracy."""
    system = lalarand.System(lalarand.Platform.load(PLATFORM), [lalarand.Task("model", profile, period_ms)])
    if checker is None:
        result = system.allocate("lalarand", budget=budget)
    else:
        result = system.allocate("lalarand", budget=budget, calibration={"model": checker.inputs_file},
                                 models={"model": checker.model}, accuracy=checker.accuracy)
    modes = [entry.split("@")[0] for entry in result.allocation.layers["model"]]
    return result, modes


def tight_period_ms(profile, fp32_ms):
    """The shortest period (= deadline), in steps of 5 % of the all-fp32 chain's WCET, at which
    `lalarand` with an unbounded budget proves the task: int8 is needed, and enough of it helps.
    None where int8 does not even make 95 % schedulable."""
    shortest = None
    for percent in range(95, 0, -5):
        if not allocate(profile, fp32_ms * percent / 100, UNBOUNDED)[0].schedulable:
            break
        shortest = fp32_ms * percent / 100
    return shortest


def checked_row(measured, checker, layers, baseline, period_ms, budget):
    """The allocation at ``budget`` checked on ``checker``'s accuracy (step 6): what it chose,
    the measured drop on the check set (what the check compared with the budget), its repairs,
    and its drop on the test set."""
    result, modes = allocate(measured.profile, period_ms, budget, checker)
    check = result.end_to_end
    int8 = [n for n, m in zip(layers, modes) if m == "cpu-int8"]
    accuracy, error, _ = measured.read(modes_with(layers, set(int8)))
    return {
        "schedulable": result.schedulable, "int8_stages": len(int8), "int8": int8,
        "check_drop_pp": check["measured_pp"], "within_budget": check["within_budget"],
        "repairs": len(check["repairs"]), "moved_to_fp32": sum(len(r["moved_to_fp32"]) for r in check["repairs"]),
        "drop_pp": baseline[0] - accuracy, "error_rise_pp": error - baseline[1],
    }


def allocation_row(measured, layers, label_free, labeled, baseline, period_ms, budget):
    """The `lalarand` allocation at ``budget`` (or, for ``"all-int8"``, every stage offered in
    int8), its int8 stages run on the test samples: the measured accuracy drop and error rise
    against ``baseline`` (fp32's accuracy and error), next to the sums of the per-stage costs of
    those stages (label-free, what the allocator counted; labeled where ``labeled`` has them)."""
    schedulable = allocated_cost = None
    if budget == "all-int8":
        modes = ["cpu-int8" if label_free[n] is not None else "cpu-fp32" for n in layers]
    else:
        result, modes = allocate(measured.profile, period_ms, budget)
        schedulable, allocated_cost = result.schedulable, result.analysis.accuracy_cost_pp
    int8 = [n for n, m in zip(layers, modes) if m == "cpu-int8"]
    accuracy, error, _ = measured.read(modes_with(layers, set(int8)))
    labeled = labeled or {}
    return {
        "budget": budget, "schedulable": schedulable, "int8_stages": len(int8), "int8": int8,
        "allocated_cost": allocated_cost, "label_free_sum": sum(label_free[n] for n in int8),
        "labeled_sum_drop": sum(labeled[n]["drop_pp"] for n in int8 if n in labeled),
        "labeled_sum_error": sum(labeled[n]["error_rise_pp"] for n in int8 if n in labeled),
        "drop_pp": baseline[0] - accuracy, "error_rise_pp": error - baseline[1],
    }


def measure(name, measured_class, model, calibration, test, check, extra, args, work, earlier):
    """Steps 2 to 5 for one model; prints as it goes, returns every number."""
    t = time.monotonic()
    shape, granularity = (REC_SHAPE, "layer") if measured_class is Recognizer else (DET_SHAPE, "block")
    saved = work / f"{name}.json"
    if args.reuse_profiles and saved.is_file():
        # Its timings (so its allocations) are the earlier run's; its int8 stages are rebuilt
        # from its saved calibration, the same seeded samples.
        profile = lalarand.Profile.load(saved)
    else:
        profile = lalarand.profile(model, saved, input_shapes={"x": shape}, modes=["cpu-fp32", "cpu-int8"],
                                   calibration=calibration, runs=args.runs, min_cold_runs=1, warmup=2,
                                   granularity=granularity)
    profile_s = time.monotonic() - t
    pj = json.loads(profile.to_json())
    layers = [layer["name"] for layer in pj["layers"]]
    label_free = {layer["name"]: layer.get("int8_accuracy_cost") for layer in pj["layers"]}
    print(f"\n== {name}: {len(layers)} stages ({granularity}), profiled in {profile_s:.0f} s; int8 cost kind "
          f"{pj.get('int8_cost_kind')}; not offered in int8: {[n for n, c in label_free.items() if c is None]}")

    measured = measured_class(model, profile, *extra, test)
    acc_name, err_name = measured_class.ACCURACY, measured_class.ERROR
    fp32 = ["cpu-fp32"] * len(layers)
    accuracy, error, _ = measured.read(fp32)
    print(f"fp32 on {len(test)} samples: {acc_name} {accuracy:.1f} %, {err_name} {error:.2f} %")
    if measured_class is Recognizer:
        text = measured.read(fp32)[2]
        print("misread (read, truth):", [(p, t) for p, t in zip(text, measured.truth) if p != t][:10])

    if earlier is not None:
        # The same seeded test samples and profile: the earlier run's per-stage costs.
        labeled = earlier[name]["labeled"]
        print(f"per-stage labeled costs from {args.stage_costs_from}")
    else:
        stage_acc, stage_err, _ = measured.read(fp32, args.stage_test)
        labeled = {}
        for n in layers:
            if label_free[n] is not None:
                a, e, _ = measured.read(modes_with(layers, {n}), args.stage_test)
                labeled[n] = {"drop_pp": stage_acc - a, "error_rise_pp": e - stage_err}
    names = list(labeled)
    rho = spearman([label_free[n] for n in names], [labeled[n]["drop_pp"] for n in names])
    rho_err = spearman([label_free[n] for n in names], [labeled[n]["error_rise_pp"] for n in names])
    drops = [labeled[n]["drop_pp"] for n in names]
    print(f"per stage alone in int8 ({len(names)} stages, {min(args.stage_test, len(test))} samples): {acc_name} drop "
          f"{min(drops):.1f} to {max(drops):.1f} pp ({sum(d > 0 for d in drops)} stages above 0); label-free "
          f"{min(label_free[n] for n in names):.4f} to {max(label_free[n] for n in names):.4f}; Spearman "
          f"label-free vs {acc_name} drop {rho:.2f}, vs {err_name} rise {rho_err:.2f}")
    for n in sorted(names, key=lambda n: -labeled[n]["drop_pp"])[:6]:
        print(f"  {n}: {acc_name} drop {labeled[n]['drop_pp']:.1f} pp, {err_name} rise "
              f"{labeled[n]['error_rise_pp']:.2f} pp, label-free {label_free[n]:.4f}")

    # The check set's inputs, as the file System.allocate(calibration=...) reads (raw fp32).
    work_inputs = pathlib.Path(tempfile.mkdtemp(prefix="ocr-check-"))
    checker = measured_class(model, profile, *extra, check)
    checker.inputs_file = work_inputs / f"{name}-check.f32"
    np.stack(checker.inputs).astype("<f4").tofile(checker.inputs_file)
    checker_fp32 = checker.read(fp32)[0]
    print(f"fp32 on the {len(check)} check samples ({args.check_on}): {acc_name} {checker_fp32:.1f} %")

    fp32_ms = fp32_chain_ms(pj)
    period = tight_period_ms(profile, fp32_ms)
    rows = []
    if period is None:
        print(f"no period below 95 % of the all-fp32 chain's {fp32_ms:.1f} ms WCET is schedulable even with int8 "
              "on this profile: no budget can bind")
        budgets = ("all-int8",)
    else:
        print(f"one task, period = deadline {period:.1f} ms ({100 * period / fp32_ms:.0f} % of the all-fp32 "
              f"chain's {fp32_ms:.1f} ms WCET)")
        budgets = BUDGETS + (UNBOUNDED, "all-int8")
    for budget in budgets:
        row = allocation_row(measured, layers, label_free, labeled, (accuracy, error), period, budget)
        rows.append(row)
        shown = "unbounded" if budget == UNBOUNDED else budget
        print(f"budget {shown}: {row['int8_stages']} int8 stages, schedulable {row['schedulable']}; sum of "
              f"label-free costs {row['label_free_sum']:.3f}; sum of labeled drops {row['labeled_sum_drop']:.1f} pp; "
              f"measured {acc_name} drop {row['drop_pp']:.1f} pp, {err_name} rise {row['error_rise_pp']:.2f} pp",
              flush=True)
        if budget != "all-int8":
            row["checked"] = c = checked_row(measured, checker, layers, (accuracy, error), period, budget)
            print(f"  checked on {acc_name} ({len(check)} {args.check_on} samples): {c['int8_stages']} int8 stages, "
                  f"schedulable {c['schedulable']}; check-set drop {c['check_drop_pp']:.2f} pp, within budget "
                  f"{c['within_budget']}, {c['repairs']} repairs ({c['moved_to_fp32']} stages moved to fp32); test "
                  f"{acc_name} drop {c['drop_pp']:.1f} pp, {err_name} rise {c['error_rise_pp']:.2f} pp", flush=True)
        else:
            a, _, _ = checker.read(modes_with(layers, set(row["int8"])))
            row["check_drop_pp"] = checker_fp32 - a
            over = [b for b in BUDGETS if row["check_drop_pp"] > b]
            print(f"  on the check set: {acc_name} drop {row['check_drop_pp']:.2f} pp: over (the check refuses it "
                  f"at) budgets {over}, within {[b for b in BUDGETS if b not in over]}", flush=True)
    return {
        "stages": len(layers), "granularity": granularity, "calibration": len(calibration), "test": len(test),
        "stage_test": args.stage_test, "fp32": {"accuracy": accuracy, "error": error}, "label_free": label_free,
        "labeled": labeled, "spearman": rho, "spearman_error": rho_err, "fp32_chain_ms": fp32_ms,
        "period_ms": period, "allocations": rows, "profile_s": profile_s, "check": len(check),
        "check_fp32": checker_fp32,
    }


REC_SHAPE = [1, 3, ocr_data.REC_HEIGHT, ocr_data.REC_WIDTH]
DET_SHAPE = [1, 3, ocr_data.DET_HEIGHT, ocr_data.DET_WIDTH]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="rec,det", help="rec, det or both (comma-separated)")
    parser.add_argument("--calibration", type=int, default=16, help="recognizer calibration words (seed 1)")
    parser.add_argument("--test", type=int, default=200, help="recognizer test words (seed 2)")
    parser.add_argument("--det-calibration", type=int, default=8, help="detector calibration pages (seed 1)")
    parser.add_argument("--pages", type=int, default=40, help="detector test pages (seed 2)")
    parser.add_argument("--check-on", choices=("held-out", "test"), default="held-out",
                        help="step 6's labeled check set: held-out (seed 3) or the test set itself")
    parser.add_argument("--check", type=int, default=200, help="recognizer check words (seed 3), step 6")
    parser.add_argument("--det-check", type=int, default=40, help="detector check pages (seed 3), step 6")
    parser.add_argument("--stage-costs-from", type=pathlib.Path, default=None,
                        help="an earlier --out JSON of the same profiles and test set: its per-stage labeled costs "
                             "instead of measuring them again (step 4)")
    parser.add_argument("--stage-test", type=int, default=200,
                        help="test samples per stage's labeled cost (at most the test set)")
    parser.add_argument("--runs", type=int, default=10, help="timed runs per stage and mode of the profiles")
    parser.add_argument("--out", type=pathlib.Path, default=None, help="write every number as JSON here")
    parser.add_argument("--work", type=pathlib.Path, default=None, help="folder for the profiles (default: temporary)")
    parser.add_argument("--reuse-profiles", action="store_true",
                        help="load rec.json / det.json from --work where they exist instead of profiling again "
                             "(reproduces that run's allocations, which depend on its timings)")
    args = parser.parse_args()
    started = time.monotonic()
    work = args.work or pathlib.Path(tempfile.mkdtemp(prefix="ocr-accuracy-"))
    work.mkdir(parents=True, exist_ok=True)
    rec, det, chars = ocr_data.fetch_models()
    earlier = json.loads(args.stage_costs_from.read_text()) if args.stage_costs_from else None
    results = {}
    for name in args.models.split(","):
        if name == "rec":
            calibration = np.stack([x[None] for _, x in ocr_data.render_words(args.calibration, seed=1)])
            test = ocr_data.render_words(args.test, seed=2)
            check = test if args.check_on == "test" else ocr_data.render_words(args.check, seed=3)
            results[name] = measure(name, Recognizer, rec, calibration, test, check, (chars,), args, work, earlier)
        elif name == "det":
            calibration = np.stack([x[None] for _, x in ocr_data.render_pages(args.det_calibration, seed=1)])
            test = ocr_data.render_pages(args.pages, seed=2)
            check = test if args.check_on == "test" else ocr_data.render_pages(args.det_check, seed=3)
            results[name] = measure(name, Detector, det, calibration, test, check, (), args, work, earlier)
        else:
            sys.exit(f"--models: unknown model {name!r}; give rec, det or both")
        print(f"({time.monotonic() - started:.0f} s so far)", flush=True)
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
