"""Builds the small vision models and inputs the vision handler tests use.

Writes tests/fixtures/handlers/vision/:
  classifier/  model.onnx (logistic regression on 32x32 NCHW crops of real CC0 photos from the
               scikit-image wheel), index_to_name.json, model-config.yaml, photos/ (downscaled
               copies of those photos, plus an unseen one) and expected.json (photo -> label).
  detector/    model.onnx: scores 16x16 anchors at stride 4 over a 64x64 input by the squared mean
               of their brightest channel (the label), so neighbouring anchors overlap and score high
               too and NMS matters; index_to_name.json.
  segmenter/   model.onnx: a 1x1 convolution over colours (logistic regression: background, red,
               green, blue) on a 64x64 input, output `out` [N,4,64,64]; index_to_name.json.

Run through scripts/make-vision-models.sh (makes the venv). Deterministic: fixed seeds, single
thread BLAS. The test images for the detector and segmenter are drawn by the Rust tests themselves.
"""

import glob
import io
import json
import os
import sys
import zipfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from PIL import Image
from sklearn.linear_model import LogisticRegression

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "handlers", "vision")
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
OPSET = [helper.make_opsetid("", 13)]

# Photo in the scikit-image wheel -> class name. Colour photos only.
TRAIN = {
    "chelsea.png": "cat",
    "coffee.png": "coffee",
    "rocket.jpg": "rocket",
    "astronaut.png": "astronaut",
    "motorcycle_left.png": "motorcycle",
    "hubble_deep_field.jpg": "galaxy",
}
# Held out: another photo of a class, never trained on.
UNSEEN = {"motorcycle_right.png": "motorcycle"}


def save(model, path):
    onnx.checker.check_model(model)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    onnx.save(model, path)
    print(f"wrote {os.path.relpath(path)} ({os.path.getsize(path)} bytes)")


def write_json(path, value):
    with open(path, "w") as f:
        json.dump(value, f, indent=1, sort_keys=True)
        f.write("\n")


def skimage_photos(wheel):
    with zipfile.ZipFile(wheel) as z:
        return {
            name: Image.open(io.BytesIO(z.read(f"skimage/data/{name}"))).convert("RGB")
            for name in list(TRAIN) + list(UNSEEN)
        }


def crop_features(img, rng, n):
    """Random resized crops (scale 0.5-1 of the short side, flips, brightness jitter) -> 32x32."""
    w, h = img.size
    out = []
    for _ in range(n):
        side = int(min(w, h) * rng.uniform(0.5, 1.0))
        x = rng.integers(0, w - side + 1)
        y = rng.integers(0, h - side + 1)
        crop = img.crop((x, y, x + side, y + side)).resize((32, 32), Image.BILINEAR)
        a = np.asarray(crop, dtype=np.float32) / 255.0
        if rng.random() < 0.5:
            a = a[:, ::-1]
        a = np.clip(a * rng.uniform(0.8, 1.2), 0, 1)
        out.append(((a - MEAN) / STD).transpose(2, 0, 1).reshape(-1))
    return out


def centre_features(img):
    """The handler's pipeline with this model's config: resize short side 36, centre crop 32."""
    w, h = img.size
    if w <= h:
        nw, nh = 36, int(36 * h / w)
    else:
        nw, nh = int(36 * w / h), 36
    r = img.resize((nw, nh), Image.BILINEAR)
    top, left = round((nh - 32) / 2), round((nw - 32) / 2)
    a = np.asarray(r.crop((left, top, left + 32, top + 32)), dtype=np.float32) / 255.0
    return ((a - MEAN) / STD).transpose(2, 0, 1).reshape(-1)


def classifier(wheel):
    out = os.path.join(ROOT, "classifier")
    photos = skimage_photos(wheel)
    names = sorted(set(TRAIN.values()))
    rng = np.random.default_rng(5)
    xs, ys = [], []
    for file, label in TRAIN.items():
        img = photos[file]
        for f in crop_features(img, rng, 300) + [centre_features(img)] * 10:
            xs.append(f)
            ys.append(names.index(label))
    clf = LogisticRegression(C=0.05, max_iter=2000)
    clf.fit(np.array(xs), np.array(ys))
    # Committed photos: downscaled (short side 128) to keep the repository small.
    os.makedirs(os.path.join(out, "photos"), exist_ok=True)
    expected = {}
    for file, label in list(TRAIN.items()) + list(UNSEEN.items()):
        img = photos[file]
        scale = 128 / min(img.size)
        small = img.resize((round(img.size[0] * scale), round(img.size[1] * scale)), Image.LANCZOS)
        stem = os.path.splitext(file)[0]
        name = f"{stem}.jpg"
        small.save(os.path.join(out, "photos", name), quality=90)
        expected[name] = label
        pred = names[int(clf.predict(centre_features(small)[None])[0])]
        print(f"  {name}: expected {label}, python replica predicts {pred}")
    write_json(os.path.join(out, "expected.json"), expected)
    write_json(os.path.join(out, "index_to_name.json"), {str(i): n for i, n in enumerate(names)})
    with open(os.path.join(out, "model-config.yaml"), "w") as f:
        f.write("handler:\n  resize: 36\n  crop: 32\n")
    w = numpy_helper.from_array(clf.coef_.T.astype(np.float32), "W")
    b = numpy_helper.from_array(clf.intercept_.astype(np.float32), "B")
    graph = helper.make_graph(
        [
            helper.make_node("Flatten", ["input"], ["flat"], axis=1),
            helper.make_node("Gemm", ["flat", "W", "B"], ["logits"]),
        ],
        "photo_classifier",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", len(names)])],
        [w, b],
    )
    save(helper.make_model(graph, opset_imports=OPSET), os.path.join(out, "model.onnx"))


def detector():
    out = os.path.join(ROOT, "detector")
    size, anchor, stride = 64, 16, 4
    cells = (size - anchor) // stride + 1
    boxes = [
        [x * stride, y * stride, x * stride + anchor, y * stride + anchor]
        for y in range(cells)
        for x in range(cells)
    ]
    k = len(boxes)
    anchors = numpy_helper.from_array(np.array([boxes], dtype=np.float32), "anchors")
    tail = numpy_helper.from_array(np.array([k, 4], dtype=np.int64), "tail")
    flat = numpy_helper.from_array(np.array([0, k], dtype=np.int64), "flat_shape")
    nodes = [
        # Mean of each channel over every anchor: [N, 3, cells, cells].
        helper.make_node("AveragePool", ["input"], ["pooled"], kernel_shape=[anchor, anchor], strides=[stride, stride]),
        helper.make_node("ReduceMax", ["pooled"], ["best"], axes=[1], keepdims=0),
        helper.make_node("Mul", ["best", "best"], ["squared"]),
        helper.make_node("Reshape", ["squared", "flat_shape"], ["scores"]),
        helper.make_node("ArgMax", ["pooled"], ["channel"], axis=1, keepdims=0),
        helper.make_node("Reshape", ["channel", "flat_shape"], ["labels"]),
        helper.make_node("Shape", ["input"], ["in_shape"], start=0, end=1),
        helper.make_node("Concat", ["in_shape", "tail"], ["box_shape"], axis=0),
        helper.make_node("Expand", ["anchors", "box_shape"], ["boxes"]),
    ]
    graph = helper.make_graph(
        nodes,
        "bright_square_detector",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, size, size])],
        [
            helper.make_tensor_value_info("boxes", TensorProto.FLOAT, ["N", k, 4]),
            helper.make_tensor_value_info("labels", TensorProto.INT64, ["N", k]),
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", k]),
        ],
        [anchors, tail, flat],
    )
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)]), os.path.join(out, "model.onnx"))
    write_json(os.path.join(out, "index_to_name.json"), {"0": "red", "1": "green", "2": "blue"})


def segmenter():
    out = os.path.join(ROOT, "segmenter")
    rng = np.random.default_rng(7)
    # Pixels: dark -> background; else the dominant channel, when it clearly dominates.
    colours = rng.random((40000, 3)).astype(np.float32)
    top = colours.max(axis=1)
    order = np.sort(colours, axis=1)
    keep = (top < 0.3) | ((top > 0.5) & (order[:, 2] - order[:, 1] > 0.3))
    colours = colours[keep]
    labels = np.where(colours.max(axis=1) < 0.3, 0, colours.argmax(axis=1) + 1)
    clf = LogisticRegression(C=100.0, max_iter=5000)
    clf.fit((colours - MEAN) / STD, labels)
    print(f"  segmenter pixel accuracy {clf.score((colours - MEAN) / STD, labels):.3f}")
    w = numpy_helper.from_array(clf.coef_.astype(np.float32).reshape(4, 3, 1, 1), "W")
    b = numpy_helper.from_array(clf.intercept_.astype(np.float32), "B")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["input", "W", "B"], ["out"], kernel_shape=[1, 1])],
        "colour_segmenter",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 64, 64])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 4, 64, 64])],
        [w, b],
    )
    save(helper.make_model(graph, opset_imports=OPSET), os.path.join(out, "model.onnx"))
    write_json(os.path.join(out, "index_to_name.json"), {"0": "background", "1": "red", "2": "green", "3": "blue"})


def main():
    wheels = glob.glob(os.path.join(sys.argv[1], "scikit_image-*.whl"))
    if not wheels:
        sys.exit(f"no scikit-image wheel in {sys.argv[1]}")
    classifier(wheels[0])
    detector()
    segmenter()


if __name__ == "__main__":
    main()
