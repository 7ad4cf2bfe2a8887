"""TorchServe handler for the example ONNX models, run with ONNX Runtime.

TorchServe cannot run an .onnx file by itself; this handler loads the archive's serialized file
with onnxruntime (one intra-op thread per worker, like oxserve's default) and accepts the same
bodies as oxserve's tensor handler: a JSON list (one row or a batch of rows), {"data": ...} or
{"instances": [...]}. One row is answered without the batch dimension.
"""

import json
import os

import numpy as np
import onnxruntime as ort
from ts.torch_handler.base_handler import BaseHandler


class OnnxHandler(BaseHandler):
    """Batches the rows of every request in the TorchServe batch into one ONNX Runtime call."""

    def initialize(self, context):
        model_dir = context.system_properties.get("model_dir")
        serialized = context.manifest["model"]["serializedFile"]
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(os.environ.get("ONNX_INTRA_OP_THREADS", "1"))
        self.session = ort.InferenceSession(
            os.path.join(model_dir, serialized), options, providers=["CPUExecutionProvider"]
        )
        self.input_name = self.session.get_inputs()[0].name
        self.rows = []
        self.initialized = True

    def preprocess(self, data):
        batches = []
        for request in data:
            body = request.get("data")
            if body is None:
                body = request.get("body")
            if isinstance(body, (bytes, bytearray)):
                body = json.loads(body)
            if isinstance(body, dict):
                body = body.get("data", body.get("instances"))
            array = np.asarray(body, dtype=np.float32)
            single = array.ndim == 1
            if single:
                array = array[None, :]
            batches.append(array)
            self.rows.append((array.shape[0], single))
        return np.concatenate(batches)

    def inference(self, data, *args, **kwargs):
        return self.session.run(None, {self.input_name: data})[0]

    def postprocess(self, data):
        answers, start = [], 0
        for count, single in self.rows:
            chunk = data[start : start + count]
            start += count
            answers.append(chunk[0].tolist() if single else chunk.tolist())
        self.rows = []
        return answers
