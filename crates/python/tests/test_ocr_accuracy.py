"""A pretrained model on labeled data, CI-sized: PP-OCRv4's text recognizer from PyPI's
rapidocr-onnxruntime wheel (downloaded with pip into .cache/ocr), read on words rendered with
known strings, through lalarand's stages; the measurement of scripts/bench/ocr_accuracy.py
(docs/evaluation.md, "Accuracy on pretrained models") on a few dozen words, at block
granularity, so that it stays well under a minute."""

import json
import math
import pathlib
import sys

import numpy as np
import pytest

import lalarand

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[3] / "scripts" / "bench"))
import ocr_accuracy  # noqa: E402
import ocr_data  # noqa: E402

# What pip says when it cannot reach PyPI at all (the one reason to skip rather than fail).
UNREACHABLE = ("NewConnectionError", "Temporary failure in name resolution", "Network is unreachable",
               "Max retries exceeded", "ConnectTimeoutError")


def models():
    """The wheel's recognizer, detector and dictionary; a skip only where pip cannot reach PyPI."""
    try:
        return ocr_data.fetch_models()
    except ocr_data.FetchError as e:
        if any(marker in str(e) for marker in UNREACHABLE):
            pytest.skip(f"pip cannot reach PyPI to download {ocr_data.WHEEL}: {e}")
        raise


@pytest.fixture(scope="module")
def recognizer(tmp_path_factory):
    rec, _, chars = models()
    calibration = np.stack([x[None] for _, x in ocr_data.render_words(4, seed=1)])
    profile = lalarand.profile(rec, tmp_path_factory.mktemp("ocr") / "rec.json",
                               input_shapes={"x": [1, 3, ocr_data.REC_HEIGHT, ocr_data.REC_WIDTH]},
                               modes=["cpu-fp32", "cpu-int8"], calibration=calibration, granularity="block",
                               runs=2, warmup=1, min_cold_runs=1, warm_cache=True)
    return ocr_accuracy.Recognizer(rec, profile, chars, ocr_data.render_words(40, seed=2))


def test_the_dictionary_and_the_decoder_read_what_was_rendered():
    _, _, chars = models()
    assert chars[0] == "" and chars[-1] == " " and len(chars) == 6625  # the recognizer's classes
    probs = np.zeros((6, len(chars)), dtype=np.float32)
    for step, c in enumerate(["a", "a", "", "a", "7", "7"]):
        probs[step, chars.index(c)] = 1.0
    assert ocr_data.ctc_greedy(probs, chars) == "aa7"  # repeats collapse, a blank separates
    assert ocr_data.scores(["cat", "dog"], ["cat", "dig"]) == (50.0, 100.0 / 6)


def test_the_pretrained_recognizer_reads_rendered_words_and_an_allocation_reports_its_measured_drop(recognizer):
    profile = recognizer.profile
    written = json.loads(profile.to_json())
    layers = [layer["name"] for layer in written["layers"]]
    label_free = {layer["name"]: layer.get("int8_accuracy_cost") for layer in written["layers"]}
    assert written["int8_cost_kind"] == "distortion"
    assert any(c is not None for c in label_free.values()), "no stage measured in int8"

    exact, cer, text = recognizer.read(["cpu-fp32"] * len(layers))
    assert exact >= 90.0, f"fp32 exact match {exact} %: {list(zip(text, recognizer.truth))}"
    assert cer <= 5.0

    fp32_ms = ocr_accuracy.fp32_chain_ms(written)
    # The shortest period that int8 makes schedulable; where this machine's timings give int8
    # no edge, the all-fp32 chain's own WCET (the allocation then measures no int8 at all).
    period = ocr_accuracy.tight_period_ms(profile, fp32_ms) or fp32_ms
    for budget in (1.0, "all-int8"):
        row = ocr_accuracy.allocation_row(recognizer, layers, label_free, None, (exact, cer), period, budget)
        assert math.isfinite(row["drop_pp"]) and math.isfinite(row["error_rise_pp"])
        assert row["label_free_sum"] >= 0.0
        if budget == "all-int8":
            assert row["int8_stages"] > 0
        else:
            assert row["allocated_cost"] == pytest.approx(row["label_free_sum"], abs=1e-9)
            assert row["allocated_cost"] <= budget, "the allocator kept to its budget on its own costs"


def test_the_pretrained_detector_finds_the_rendered_words(tmp_path):
    _, det, _ = models()
    calibration = np.stack([x[None] for _, x in ocr_data.render_pages(2, seed=1)])
    profile = lalarand.profile(det, tmp_path / "det.json",
                               input_shapes={"x": [1, 3, ocr_data.DET_HEIGHT, ocr_data.DET_WIDTH]},
                               modes=["cpu-fp32", "cpu-int8"], calibration=calibration, granularity="block",
                               runs=2, warmup=1, min_cold_runs=1, warm_cache=True)
    detector = ocr_accuracy.Detector(det, profile, ocr_data.render_pages(10, seed=2))
    recall, false_boxes, _ = detector.read(["cpu-fp32"] * len(profile.layers))
    assert recall >= 75.0 and false_boxes <= 25.0, f"fp32 box recall {recall} %, precision {100 - false_boxes} %"
