#!/usr/bin/env python3
"""Build the small text models the text handlers are tested with (deterministic, fixed seeds).

Run it through its wrapper, which makes the pinned virtualenv ``.venv-text``:

    bash scripts/make-text-models.sh

The tokenizer trainer breaks ties between equally frequent merges in hash-map order, so token ids
(and so the weight tables) differ from run to run; the expected answers are always written by the
same run as the models, so a regenerated set is consistent.

Everything is written under ``tests/fixtures/handlers/text/`` and committed, so CI needs no Python
for these models:

tokenizer.json
    A BERT-style WordPiece tokenizer (lower-casing BertNormalizer, BertPreTokenizer, ``[CLS] $A
    [SEP]`` template) trained with the ``tokenizers`` package on the corpus written below.
classifier/
    A TorchServe model folder (MAR-INF/MANIFEST.json naming ``text_classifier``) holding
    ``topic_classifier.onnx``: a bag-of-words logistic regression trained with scikit-learn on the
    mean one-hot vector of a text's tokens, written as ONNX by hand:
    ``logits = sum_t(W[input_ids[t]] * mask[t]) / sum_t(mask[t]) + b``, inputs ``input_ids`` and
    ``attention_mask`` (int64 [N,T]), output ``logits`` [N,4]. Plus ``index_to_name.json`` and
    ``model-config.yaml``.
embedder/
    ``token_embedder.onnx``: inputs ``input_ids``, ``attention_mask``, ``token_type_ids``; output
    ``last_hidden_state`` [N,T,16] = word table[ids] + position table[t] + type table[types]
    (random, seed 1). Exercises the handler's masked mean pooling.
embedder-pooled/
    ``pooled_embedder.onnx``: the same tables with the masked mean done inside the graph, output
    ``sentence_embedding`` [N,16] (not normalised). Exercises models that pool themselves.
expected.json
    Reference answers computed here with numpy, each checked against onnx's ReferenceEvaluator:
    classifier probabilities (softmax) per text, embeddings (raw mean and L2-normalised).
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator
from sklearn.linear_model import LogisticRegression
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "tests" / "fixtures" / "handlers" / "text"
OPSET = 13
IR_VERSION = 8
CREATED_ON = "01/01/2025 00:00:00"
LABELS = ["sports", "food", "weather", "technology"]
EMBED_DIM = 16
MAX_POSITIONS = 64

# Per topic: subjects, verbs/phrases and objects; sentences are random combinations of them.
TOPICS = {
    "sports": (
        ["the team", "our striker", "the goalkeeper", "the coach", "the players", "the referee",
         "the champion", "the runner", "the tennis player", "the home side"],
        ["scored a goal in", "won the match after", "trained hard before", "lost the final during",
         "celebrated the victory after", "was injured in", "kicked the ball in", "ran the marathon in"],
        ["the second half", "the league game", "the championship", "extra time", "the stadium",
         "the tournament", "the penalty shootout", "the derby", "the season opener", "the cup final"],
    ),
    "food": (
        ["the chef", "my grandmother", "the bakery", "the restaurant", "the cook", "the waiter",
         "our kitchen", "the pastry chef", "the street vendor", "the family"],
        ["baked fresh bread with", "cooked a spicy soup with", "served pasta with", "grilled chicken with",
         "prepared a salad with", "roasted vegetables with", "made a cake with", "fried rice with"],
        ["garlic and butter", "tomato sauce", "cheese and herbs", "olive oil", "chocolate cream",
         "fresh basil", "lemon and pepper", "sweet onions", "a pinch of salt", "mushrooms and cream"],
    ),
    "weather": (
        ["the forecast", "the storm", "the wind", "the rain", "the morning", "the weekend",
         "the sky", "the cold front", "the heatwave", "the snow"],
        ["brings heavy rain to", "will bring sunshine over", "caused flooding across", "left snow on",
         "brought strong winds to", "turned cloudy over", "warmed up across", "froze the roads in"],
        ["the coast", "the mountains", "the northern region", "the valley", "the city tonight",
         "the islands", "the southern plains", "the whole country", "the lakes", "the hills"],
    ),
    "technology": (
        ["the new phone", "the software update", "the startup", "the laptop", "the database",
         "the programmer", "the cloud service", "the chip maker", "the robot", "the browser"],
        ["ships a faster processor with", "fixed a security bug in", "released an app for",
         "crashed while running", "added encryption to", "compiled the code for",
         "upgraded the memory of", "deployed a server for"],
        ["the operating system", "the network", "the battery", "machine learning", "the web browser",
         "the data center", "the mobile app", "the graphics card", "the kernel", "the compiler"],
    ),
}

# Held-out texts the tests send; none is in the training corpus.
TEST_TEXTS = [
    ("The striker scored twice in the cup final.", "sports"),
    ("My grandmother baked bread with garlic and butter.", "food"),
    ("Heavy rain and strong winds hit the coast tonight.", "weather"),
    ("The software update fixed a bug in the kernel.", "technology"),
    ("The goalkeeper was injured during the derby.", "sports"),
    ("The cloud service deployed a database for the mobile app.", "technology"),
]

EMBED_TEXTS = [
    "The cat sits on the mat.",
    "A short one.",
    "The storm brought snow to the mountains and the valley.",
    "Zebra quantum xylophone!",
]


def corpus(rng: random.Random) -> list[tuple[str, int]]:
    """Sentences with their topic index, every combination sampled a few times."""
    rows = []
    for label, (subjects, verbs, objects) in enumerate(TOPICS.values()):
        for _ in range(300):
            text = f"{rng.choice(subjects)} {rng.choice(verbs)} {rng.choice(objects)}."
            rows.append((text[0].upper() + text[1:], label))
    rng.shuffle(rows)
    return rows


def train_tokenizer(texts: list[str]) -> Tokenizer:
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(
        vocab_size=1000,
        special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    return tok


def encode(tok: Tokenizer, texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Right-padded ids, mask and type ids, as the handler builds them."""
    encs = [tok.encode(t) for t in texts]
    width = max(len(e.ids) for e in encs)
    ids = np.zeros((len(encs), width), np.int64)
    mask = np.zeros_like(ids)
    types = np.zeros_like(ids)
    for i, e in enumerate(encs):
        n = len(e.ids)
        ids[i, :n], mask[i, :n], types[i, :n] = e.ids, e.attention_mask, e.type_ids
    return ids, mask, types


def bag_of_tokens(ids: np.ndarray, mask: np.ndarray, vocab: int) -> np.ndarray:
    x = np.zeros((ids.shape[0], vocab), np.float64)
    for i in range(ids.shape[0]):
        for t in range(ids.shape[1]):
            if mask[i, t]:
                x[i, ids[i, t]] += 1.0
        x[i] /= mask[i].sum()
    return x


def masked_mean_nodes(table_out: str, out: str, nodes: list, inits: list) -> None:
    """``out = sum_t(table_out * mask) / sum_t(mask)`` over axis 1; table_out is [N,T,D]."""
    inits.append(numpy_helper.from_array(np.array([-1], np.int64), "axis_last"))
    inits.append(numpy_helper.from_array(np.array([1], np.int64), "axis_seq"))
    nodes += [
        helper.make_node("Cast", ["attention_mask"], ["mask_f"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["mask_f", "axis_last"], ["mask_3d"]),
        helper.make_node("Mul", [table_out, "mask_3d"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "axis_seq"], ["summed"], keepdims=0),
        helper.make_node("ReduceSum", ["mask_3d", "axis_seq"], ["count"], keepdims=0),
        helper.make_node("Div", ["summed", "count"], [out]),
    ]


def save(graph: onnx.GraphProto, path: Path) -> onnx.ModelProto:
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="oxserve-make-text-models"
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, path)
    return model


def seq_input(name: str) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.INT64, ["batch", "sequence"])


def classifier_graph(weights: np.ndarray, bias: np.ndarray) -> onnx.GraphProto:
    nodes, inits = [], [
        numpy_helper.from_array(weights.astype(np.float32), "token_weights"),
        numpy_helper.from_array(bias.astype(np.float32), "bias"),
    ]
    nodes.append(helper.make_node("Gather", ["token_weights", "input_ids"], ["per_token"], axis=0))
    masked_mean_nodes("per_token", "mean_weights", nodes, inits)
    nodes.append(helper.make_node("Add", ["mean_weights", "bias"], ["logits"]))
    return helper.make_graph(
        nodes,
        "topic_classifier",
        [seq_input("input_ids"), seq_input("attention_mask")],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", len(LABELS)])],
        inits,
    )


def embedder_graph(words: np.ndarray, positions: np.ndarray, types: np.ndarray, pooled: bool):
    inits = [
        numpy_helper.from_array(words, "word_table"),
        numpy_helper.from_array(positions, "position_table"),
        numpy_helper.from_array(types, "type_table"),
        numpy_helper.from_array(np.array(0, np.int64), "zero"),
        numpy_helper.from_array(np.array(1, np.int64), "one"),
    ]
    nodes = [
        helper.make_node("Gather", ["word_table", "input_ids"], ["word_vecs"], axis=0),
        helper.make_node("Gather", ["type_table", "token_type_ids"], ["type_vecs"], axis=0),
        helper.make_node("Shape", ["input_ids"], ["ids_shape"]),
        helper.make_node("Gather", ["ids_shape", "one"], ["seq_len"], axis=0),
        helper.make_node("Range", ["zero", "seq_len", "one"], ["positions"]),
        helper.make_node("Gather", ["position_table", "positions"], ["pos_vecs"], axis=0),
        helper.make_node("Add", ["word_vecs", "type_vecs"], ["word_type"]),
    ]
    inputs = [seq_input("input_ids"), seq_input("attention_mask"), seq_input("token_type_ids")]
    if pooled:
        nodes.append(helper.make_node("Add", ["word_type", "pos_vecs"], ["hidden"]))
        masked_mean_nodes("hidden", "sentence_embedding", nodes, inits)
        out = helper.make_tensor_value_info("sentence_embedding", TensorProto.FLOAT, ["batch", EMBED_DIM])
    else:
        nodes.append(helper.make_node("Add", ["word_type", "pos_vecs"], ["last_hidden_state"]))
        out = helper.make_tensor_value_info(
            "last_hidden_state", TensorProto.FLOAT, ["batch", "sequence", EMBED_DIM]
        )
    return helper.make_graph(nodes, "pooled_embedder" if pooled else "token_embedder", inputs, [out], inits)


def model_folder(name: str, model_file: str, handler: str, config: str, extra: dict[str, str]) -> Path:
    folder = OUT / name
    if folder.exists():
        shutil.rmtree(folder)
    (folder / "MAR-INF").mkdir(parents=True)
    manifest = {
        "createdOn": CREATED_ON,
        "runtime": "python",
        "model": {
            "modelName": name,
            "serializedFile": model_file,
            "handler": handler,
            "modelVersion": "1.0",
            "configFile": "model-config.yaml",
        },
        "archiverVersion": "0.12.0",
    }
    (folder / "MAR-INF" / "MANIFEST.json").write_text(json.dumps(manifest, indent=2) + "\n")
    (folder / "model-config.yaml").write_text(config)
    shutil.copy(OUT / "tokenizer.json", folder / "tokenizer.json")
    for file, text in extra.items():
        (folder / file).write_text(text)
    return folder


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    rows = corpus(random.Random(0))
    texts = [t for t, _ in rows]
    labels = np.array([label for _, label in rows])
    tok = train_tokenizer(texts)
    tok.save(str(OUT / "tokenizer.json"))
    vocab = tok.get_vocab_size()

    # Classifier: logistic regression on the mean one-hot of the tokens (special tokens included,
    # exactly what the ONNX graph computes from input_ids and attention_mask).
    ids, mask, _ = encode(tok, texts)
    clf = LogisticRegression(C=20.0, max_iter=2000)
    clf.fit(bag_of_tokens(ids, mask, vocab), labels)
    weights, bias = clf.coef_.T.astype(np.float32), clf.intercept_.astype(np.float32)
    folder = model_folder(
        "classifier",
        "topic_classifier.onnx",
        "text_classifier",
        "minWorkers: 1\nbatchSize: 8\nmaxBatchDelay: 20\nhandler:\n  max_length: 64\n  top_k: 4\n",
        {"index_to_name.json": json.dumps({str(i): n for i, n in enumerate(LABELS)}, indent=2) + "\n"},
    )
    model = save(classifier_graph(weights, bias), folder / "topic_classifier.onnx")

    test_texts = [t for t, _ in TEST_TEXTS]
    t_ids, t_mask, _ = encode(tok, test_texts)
    probs = softmax(bag_of_tokens(t_ids, t_mask, vocab) @ weights.astype(np.float64) + bias)
    (onnx_logits,) = ReferenceEvaluator(model).run(None, {"input_ids": t_ids, "attention_mask": t_mask})
    assert np.allclose(softmax(onnx_logits.astype(np.float64)), probs, atol=1e-5)
    for (text, want), p in zip(TEST_TEXTS, probs):
        got = LABELS[int(p.argmax())]
        assert got == want, f"{text!r}: classified {got}, want {want}"

    # Embedders.
    rng = np.random.default_rng(1)
    words = rng.standard_normal((vocab, EMBED_DIM)).astype(np.float32)
    positions = (0.1 * rng.standard_normal((MAX_POSITIONS, EMBED_DIM))).astype(np.float32)
    types = (0.1 * rng.standard_normal((2, EMBED_DIM))).astype(np.float32)
    embed_config = f"minWorkers: 1\nbatchSize: 8\nmaxBatchDelay: 20\nhandler:\n  max_length: {MAX_POSITIONS}\n"
    token_model = save(
        embedder_graph(words, positions, types, pooled=False),
        model_folder("embedder", "token_embedder.onnx", "text_embedding", embed_config, {}) / "token_embedder.onnx",
    )
    pooled_model = save(
        embedder_graph(words, positions, types, pooled=True),
        model_folder("embedder-pooled", "pooled_embedder.onnx", "text_embedding", embed_config, {})
        / "pooled_embedder.onnx",
    )
    e_ids, e_mask, e_types = encode(tok, EMBED_TEXTS)
    hidden = words[e_ids] + positions[: e_ids.shape[1]][None] + types[e_types]
    m = e_mask[..., None].astype(np.float64)
    mean = (hidden * m).sum(axis=1) / m.sum(axis=1)
    normalized = mean / np.linalg.norm(mean, axis=1, keepdims=True)
    feeds = {"input_ids": e_ids, "attention_mask": e_mask, "token_type_ids": e_types}
    (onnx_hidden,) = ReferenceEvaluator(token_model).run(None, feeds)
    assert np.allclose(onnx_hidden, hidden, atol=1e-5)
    (onnx_pooled,) = ReferenceEvaluator(pooled_model).run(None, feeds)
    assert np.allclose(onnx_pooled, mean, atol=1e-5)

    expected = {
        "labels": LABELS,
        "classifier": [
            {"text": text, "label": want, "probabilities": {n: round(float(v), 7) for n, v in zip(LABELS, p)}}
            for (text, want), p in zip(TEST_TEXTS, probs)
        ],
        "embedder": [
            {
                "text": text,
                "tokens": int(e_mask[i].sum()),
                "mean": [round(float(v), 7) for v in mean[i]],
                "normalized": [round(float(v), 7) for v in normalized[i]],
            }
            for i, text in enumerate(EMBED_TEXTS)
        ],
    }
    (OUT / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")
    for path in sorted(OUT.rglob("*")):
        if path.is_file():
            print(f"wrote {path.relative_to(REPO)} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
