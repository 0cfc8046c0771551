"""Labeled text-recognition data and the pretrained PP-OCRv4 models it is read with.

The models ship inside PyPI's ``rapidocr-onnxruntime`` wheel: ``fetch_models`` downloads the
wheel with pip (once, into the git-ignored ``.cache/ocr``) and extracts the recognizer, the
detector and the recognizer's character dictionary (kept in the ONNX file's metadata). The
labels are made, not downloaded: ``render_words`` draws known strings with Debian's DejaVu
fonts, with noise, blur and small rotations, from a seed. Nothing here is committed data.

Used by ``scripts/bench/ocr_accuracy.py`` (docs/evaluation.md, "Accuracy on pretrained
models") and by ``crates/python/tests/test_ocr_accuracy.py``.
"""

import math
import pathlib
import subprocess
import sys
import warnings
import zipfile

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

ROOT = pathlib.Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "ocr"
WHEEL = "rapidocr-onnxruntime==1.4.4"
REC = "ch_PP-OCRv4_rec_infer.onnx"
DET = "ch_PP-OCRv4_det_infer.onnx"
FONT_DIR = pathlib.Path("/usr/share/fonts/truetype/dejavu")
FONTS = ["DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSerif.ttf", "DejaVuSansMono.ttf",
         "DejaVuSansCondensed.ttf", "DejaVuSans-Oblique.ttf"]
# The recognizer's input as RapidOCR feeds it (rec_img_shape 3, 48, 320): height 48, the width
# padded to 320; fixed, so one profile serves every sample.
REC_HEIGHT, REC_WIDTH = 48, 320

WORDS = """time year people way day man thing woman life child world school state family
student group country problem hand part place case week company system program question work
government number night point home water room mother area money story fact month lot right
study book eye job word business issue side kind head house service friend father power hour
game line end member law car city community name president team minute idea kid body
information back parent face others level office door health person art war history party
result change morning reason research girl guy moment air teacher force education Berlin Paris
Tokyo Lisbon Oslo Nairobi Lima Quebec Madrid Vienna Prague Dublin Warsaw Athens Cairo""".split()


class FetchError(RuntimeError):
    """pip could not download the wheel (no route to PyPI, or the version is gone)."""


def fetch_models(cache=CACHE):
    """Paths of the recognizer and detector, and the recognizer's characters (index ``i`` of
    the output's last axis is ``chars[i]``; ``chars[0]`` is CTC's blank, ``""``)."""
    cache = pathlib.Path(cache)
    models = cache / "models"
    rec, det, dictionary = models / REC, models / DET, models / "rec_characters.txt"
    if not (rec.is_file() and det.is_file() and dictionary.is_file()):
        wheels = cache / "wheel"
        done = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                               "--disable-pip-version-check", WHEEL, "-d", str(wheels)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise FetchError(f"pip download {WHEEL} failed: {done.stderr.strip()[-500:]}")
        wheel = next(wheels.glob("rapidocr_onnxruntime-*.whl"))
        models.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheel) as z:
            for name in (REC, DET):
                (models / name).write_bytes(z.read(f"rapidocr_onnxruntime/models/{name}"))
        dictionary.write_text(_metadata_characters(rec), encoding="utf-8")
    # RapidOCR's CTC label decoder: blank first, the dictionary, then the space character.
    chars = [""] + dictionary.read_text(encoding="utf-8").splitlines() + [" "]
    return rec, det, chars


def _metadata_characters(model):
    import onnx  # only needed once, to read the dictionary out of the model's metadata

    props = {p.key: p.value for p in onnx.load(str(model), load_external_data=False).metadata_props}
    if "character" not in props:
        raise FetchError(f"{model}: no 'character' metadata (the dictionary) in this recognizer")
    return props["character"]


def _fonts(rng, size):
    """A random DejaVu font at ``size``; without them (not a Debian machine), Pillow's own
    scalable font, with a warning: the numbers in docs/evaluation.md were rendered with DejaVu."""
    names = [FONT_DIR / f for f in FONTS if (FONT_DIR / f).is_file()]
    if not names:
        warnings.warn(f"no DejaVu fonts in {FONT_DIR} (Debian: apt-get install fonts-dejavu-core); "
                      "rendering with Pillow's built-in font instead", stacklevel=2)
        return ImageFont.load_default(size=size)
    return ImageFont.truetype(str(names[rng.integers(len(names))]), size=size)


def random_text(rng):
    """A word (lower, capitalised or upper case) or a number in one of several formats."""
    kind = rng.integers(6)
    if kind <= 2:
        word = WORDS[rng.integers(len(WORDS))]
        return [word, word.capitalize(), word.upper()][kind]
    if kind == 3:
        return str(rng.integers(10, 100000))
    if kind == 4:
        return f"{rng.integers(1, 1000)}.{rng.integers(0, 100):02d}"
    return f"{rng.integers(1, 29):02d}-{rng.integers(1, 13):02d}-{rng.integers(1990, 2030)}"


def render(text, rng):
    """``text`` drawn dark on light grey in a random DejaVu font and size, rotated by up to 4
    degrees, blurred and with Gaussian noise: an RGB uint8 image, the text's line tightly
    cropped with a margin, as a detector's crop would be."""
    font = _fonts(rng, int(rng.integers(20, 41)))
    left, top, right, bottom = font.getbbox(text)
    pad = int(rng.integers(3, 9))
    background = int(rng.integers(150, 256))
    image = Image.new("L", (right - left + 2 * pad, bottom - top + 2 * pad), background)
    ImageDraw.Draw(image).text((pad - left, pad - top), text, font=font, fill=int(rng.integers(0, 110)))
    image = image.rotate(float(rng.uniform(-4, 4)), resample=Image.BILINEAR, expand=True, fillcolor=background)
    image = image.filter(ImageFilter.GaussianBlur(float(rng.uniform(0, 1.5))))
    pixels = np.asarray(image, dtype=np.float32) + rng.normal(0, rng.uniform(3, 18), (image.height, image.width))
    return np.repeat(np.clip(pixels, 0, 255).astype(np.uint8)[:, :, None], 3, axis=2)


def rec_input(image, width=REC_WIDTH):
    """RapidOCR's recognizer preprocessing: height 48, width in proportion up to ``width``,
    scaled to [-1, 1], padded with zeros on the right; float32 of shape (3, 48, width)."""
    h, w = image.shape[:2]
    resized_w = min(width, int(math.ceil(REC_HEIGHT * w / h)))
    resized = np.asarray(Image.fromarray(image).resize((resized_w, REC_HEIGHT), Image.BILINEAR), dtype=np.float32)
    out = np.zeros((3, REC_HEIGHT, width), dtype=np.float32)
    out[:, :, :resized_w] = (resized.transpose(2, 0, 1) / 255.0 - 0.5) / 0.5
    return out


def render_words(n, seed, width=REC_WIDTH):
    """``n`` (text, recognizer input) pairs from ``seed``; the input is float32 (3, 48, width)."""
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(n):
        text = random_text(rng)
        samples.append((text, rec_input(render(text, rng), width)))
    return samples


def ctc_greedy(probs, chars):
    """CTC greedy decoding of one recognizer output (time steps x classes): the best class of
    every step, repeats collapsed, blanks (class 0) dropped."""
    best = np.asarray(probs).reshape(-1, len(chars)).argmax(axis=1)
    keep = (best != 0) & np.concatenate(([True], best[1:] != best[:-1]))
    return "".join(chars[i] for i in best[keep])


def edit_distance(a, b):
    """Levenshtein distance between two strings."""
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[len(b)]


def scores(predicted, truth):
    """(exact match %, character error rate %) of predicted strings against the truth."""
    exact = 100.0 * sum(p == t for p, t in zip(predicted, truth)) / len(truth)
    cer = 100.0 * sum(edit_distance(p, t) for p, t in zip(predicted, truth)) / sum(len(t) for t in truth)
    return exact, cer


# ---- the detector: pages of words with their boxes ---------------------------------------------

DET_HEIGHT, DET_WIDTH = 320, 640  # strides of 32 divide both


def render_page(rng, height=DET_HEIGHT, width=DET_WIDTH):
    """A light page with one word or number per row band, each at a random place and size, blurred
    and noisy: (RGB uint8 image, the words' boxes as (x0, y0, x1, y1) in pixels)."""
    background = int(rng.integers(180, 256))
    page = Image.new("L", (width, height), background)
    draw = ImageDraw.Draw(page)
    boxes = []
    rows = int(rng.integers(3, 6))
    band = height // rows
    for r in range(rows):
        text = random_text(rng)
        font = _fonts(rng, int(rng.integers(18, min(40, band - 6) + 1)))
        left, top, right, bottom = font.getbbox(text)
        w, h = right - left, bottom - top
        if w >= width - 8:
            continue
        x = int(rng.integers(4, width - w - 4))
        y = r * band + int(rng.integers(2, max(3, band - h - 2)))
        draw.text((x - left, y - top), text, font=font, fill=int(rng.integers(0, 90)))
        boxes.append((x, y, x + w, y + h))
    page = page.filter(ImageFilter.GaussianBlur(float(rng.uniform(0, 1.2))))
    pixels = np.asarray(page, dtype=np.float32) + rng.normal(0, rng.uniform(3, 15), (height, width))
    return np.repeat(np.clip(pixels, 0, 255).astype(np.uint8)[:, :, None], 3, axis=2), boxes


def det_input(image):
    """RapidOCR's detector preprocessing (mean and std 0.5): float32 (3, H, W) in [-1, 1]."""
    return ((np.asarray(image, dtype=np.float32) / 255.0 - 0.5) / 0.5).transpose(2, 0, 1).copy()


def render_pages(n, seed):
    """``n`` (boxes, detector input) pairs from ``seed``."""
    rng = np.random.default_rng(seed)
    pages = []
    for _ in range(n):
        image, boxes = render_page(rng)
        pages.append((boxes, det_input(image)))
    return pages


def det_boxes(prob, thresh=0.3, box_thresh=0.5, unclip=1.6, min_side=3):
    """Text boxes from the detector's probability map, as RapidOCR's DB post-processing finds
    them (its thresholds), with axis-aligned boxes: the connected regions above ``thresh`` whose
    mean probability reaches ``box_thresh``, each grown by DB's unclip distance (area x
    ``unclip`` / perimeter), since the map marks shrunk text kernels."""
    from scipy import ndimage  # the bench's and the test's own dependency, not lalarand's

    prob = np.asarray(prob).reshape(np.asarray(prob).shape[-2:])
    labels, _ = ndimage.label(prob > thresh)
    boxes = []
    for i, region in enumerate(ndimage.find_objects(labels), start=1):
        ys, xs = region
        h, w = ys.stop - ys.start, xs.stop - xs.start
        if min(h, w) < min_side or prob[region][labels[region] == i].mean() < box_thresh:
            continue
        d = w * h * unclip / (2 * (w + h))
        boxes.append((xs.start - d, ys.start - d, xs.stop + d, ys.stop + d))
    return boxes


def iou(a, b):
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def box_recall(found, truth, min_iou=0.5):
    """(recall %, precision %): truth boxes matched by a found box at IoU >= ``min_iou`` (each
    found box matches at most one), over all pages; ``found`` and ``truth`` are per-page lists."""
    matched = total_truth = total_found = 0
    for f, t in zip(found, truth):
        free = list(f)
        for box in t:
            best = max(free, key=lambda b: iou(b, box), default=None)
            if best is not None and iou(best, box) >= min_iou:
                matched += 1
                free.remove(best)
        total_truth += len(t)
        total_found += len(f)
    return 100.0 * matched / max(1, total_truth), 100.0 * matched / max(1, total_found)
