#!/usr/bin/env python3
"""Write a BERT encoder (all-MiniLM-L6-v2 and other Hugging Face ``BertModel`` checkpoints) as ONNX,
from ``config.json`` + ``model.safetensors``, with numpy and onnx only (no torch, no transformers).

    python scripts/minilm-to-onnx.py CHECKPOINT_DIR OUT.onnx

The graph takes ``input_ids``, ``attention_mask`` and ``token_type_ids`` (int64 [batch, sequence])
and returns ``last_hidden_state`` (float32 [batch, sequence, hidden]): the token embeddings, so the
server's text_embedding handler does the pooling (mean over the attention mask, then L2
normalisation), the way sentence-transformers does. Opset 13 with LayerNorm and GELU spelled out in
basic ops, which every ONNX engine oxserve runs (tract, ONNX Runtime) supports.

Called by scripts/install-minilm.sh.
"""

from __future__ import annotations

import json
import math
import struct
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

SAFETENSORS_DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": None, "I64": np.int64}


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """The safetensors format: an 8-byte little-endian header length, a JSON header, raw data."""
    raw = path.read_bytes()
    (header_len,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + header_len])
    data = memoryview(raw)[8 + header_len :]
    tensors = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        dtype = SAFETENSORS_DTYPES.get(meta["dtype"])
        if dtype is None:
            sys.exit(f"{path}: tensor {name} has unsupported dtype {meta['dtype']}")
        start, end = meta["data_offsets"]
        array = np.frombuffer(data[start:end], dtype=dtype).reshape(meta["shape"])
        tensors[name] = array.astype(np.float32) if dtype == np.float16 else array
    return tensors


class Graph:
    """Appends nodes and initialisers with unique names."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.count = 0

    def fresh(self, hint: str) -> str:
        self.count += 1
        return f"{hint}.{self.count}"

    def const(self, value, hint: str = "const") -> str:
        name = self.fresh(hint)
        self.initializers.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(self, op_type: str, *inputs: str, out: str | None = None, **attrs) -> str:
        out = out or self.fresh(op_type.lower())
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=out, **attrs))
        return out


class Bert:
    def __init__(self, config: dict, weights: dict[str, np.ndarray]) -> None:
        self.g = Graph()
        self.w = weights
        self.prefix = "bert." if "bert.embeddings.word_embeddings.weight" in weights else ""
        self.hidden = config["hidden_size"]
        self.heads = config["num_attention_heads"]
        self.layers = config["num_hidden_layers"]
        self.eps = float(config.get("layer_norm_eps", 1e-12))
        if config.get("hidden_act", "gelu") != "gelu":
            sys.exit(f"unsupported activation {config['hidden_act']}: only gelu is written")
        if config.get("position_embedding_type", "absolute") != "absolute":
            sys.exit("only absolute position embeddings are supported")

    def weight(self, key: str, transpose: bool = False) -> str:
        array = self.w[self.prefix + key]
        return self.g.const(np.ascontiguousarray(array.T if transpose else array), key)

    def dense(self, x: str, key: str) -> str:
        g = self.g
        return g.op("Add", g.op("MatMul", x, self.weight(f"{key}.weight", transpose=True)), self.weight(f"{key}.bias"))

    def layer_norm(self, x: str, key: str) -> str:
        g = self.g
        mean = g.op("ReduceMean", x, axes=[-1])
        centred = g.op("Sub", x, mean)
        variance = g.op("ReduceMean", g.op("Mul", centred, centred), axes=[-1])
        std = g.op("Sqrt", g.op("Add", variance, g.const(np.float32(self.eps), "eps")))
        scaled = g.op("Div", centred, std)
        return g.op("Add", g.op("Mul", scaled, self.weight(f"{key}.weight")), self.weight(f"{key}.bias"))

    def gelu(self, x: str) -> str:
        """Exact GELU: x * (1 + erf(x / sqrt 2)) / 2."""
        g = self.g
        erf = g.op("Erf", g.op("Div", x, g.const(np.float32(math.sqrt(2.0)), "sqrt2")))
        return g.op("Mul", g.op("Mul", x, g.op("Add", erf, g.const(np.float32(1.0), "one"))), g.const(np.float32(0.5), "half"))

    def heads_split(self, x: str, perm: list[int]) -> str:
        shape = self.g.const(np.array([0, 0, self.heads, self.hidden // self.heads], np.int64), "heads_shape")
        return self.g.op("Transpose", self.g.op("Reshape", x, shape), perm=perm)

    def attention(self, x: str, bias: str, key: str) -> str:
        g = self.g
        q = self.heads_split(self.dense(x, f"{key}.self.query"), [0, 2, 1, 3])
        k = self.heads_split(self.dense(x, f"{key}.self.key"), [0, 2, 3, 1])
        v = self.heads_split(self.dense(x, f"{key}.self.value"), [0, 2, 1, 3])
        scale = g.const(np.float32(1.0 / math.sqrt(self.hidden // self.heads)), "scale")
        scores = g.op("Add", g.op("Mul", g.op("MatMul", q, k), scale), bias)
        context = g.op("MatMul", g.op("Softmax", scores, axis=-1), v)
        merged = g.op(
            "Reshape",
            g.op("Transpose", context, perm=[0, 2, 1, 3]),
            g.const(np.array([0, 0, self.hidden], np.int64), "merged_shape"),
        )
        return self.dense(merged, f"{key}.output.dense")

    def build(self) -> onnx.ModelProto:
        g = self.g
        ids, mask, types = "input_ids", "attention_mask", "token_type_ids"
        seq_len = g.op("Gather", g.op("Shape", ids), g.const(np.array(1, np.int64), "one_i"), axis=0)
        positions = g.op("Range", g.const(np.array(0, np.int64), "zero_i"), seq_len, g.const(np.array(1, np.int64), "step"))
        x = g.op(
            "Add",
            g.op(
                "Add",
                g.op("Gather", self.weight("embeddings.word_embeddings.weight"), ids, axis=0),
                g.op("Gather", self.weight("embeddings.token_type_embeddings.weight"), types, axis=0),
            ),
            g.op("Gather", self.weight("embeddings.position_embeddings.weight"), positions, axis=0),
        )
        x = self.layer_norm(x, "embeddings.LayerNorm")
        # Padding positions get a large negative score before the softmax: [batch, 1, 1, sequence].
        mask_f = g.op("Cast", mask, to=TensorProto.FLOAT)
        keep = g.op("Unsqueeze", mask_f, g.const(np.array([1, 2], np.int64), "axes12"))
        bias = g.op("Mul", g.op("Sub", g.const(np.float32(1.0), "one"), keep), g.const(np.float32(-10000.0), "neg"))
        for i in range(self.layers):
            key = f"encoder.layer.{i}"
            attended = self.layer_norm(g.op("Add", self.attention(x, bias, f"{key}.attention"), x), f"{key}.attention.output.LayerNorm")
            inner = self.gelu(self.dense(attended, f"{key}.intermediate.dense"))
            out = g.op("Add", self.dense(inner, f"{key}.output.dense"), attended)
            x = self.layer_norm(out, f"{key}.output.LayerNorm")
        g.op("Identity", x, out="last_hidden_state")
        inputs = [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "sequence"]) for n in (ids, mask, types)]
        output = helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "sequence", self.hidden])
        graph = helper.make_graph(g.nodes, "bert_encoder", inputs, [output], g.initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="oxserve-minilm-to-onnx")
        model.ir_version = 8
        onnx.checker.check_model(model)
        return model


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    checkpoint, out = Path(sys.argv[1]), Path(sys.argv[2])
    config = json.loads((checkpoint / "config.json").read_text())
    model = Bert(config, read_safetensors(checkpoint / "model.safetensors")).build()
    tmp = out.with_suffix(".onnx.partial")
    onnx.save(model, tmp)
    tmp.replace(out)
    print(f"wrote {out} ({out.stat().st_size // 1_000_000} MB)")


if __name__ == "__main__":
    main()
