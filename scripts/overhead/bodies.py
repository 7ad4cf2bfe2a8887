"""Request bodies for scripts/overhead/run.sh, from examples/inputs/tiny.json and the model's
metadata: an Open Inference Protocol binary request (JSON header, then the raw FP32 bytes) and a
gRPC ModelInfer call (built with tritonclient's own protobuf classes, framed as gRPC sends it).

usage: python bodies.py INPUT_JSON METADATA_JSON OUT_DIR   (prints the OIP header's length)
"""
import json
import struct
import sys

from tritonclient.grpc import service_pb2

values_path, metadata_path, out = sys.argv[1:4]
values = json.load(open(values_path))
while isinstance(values[0], list):
    values = [v for row in values for v in row]
metadata = json.load(open(metadata_path))
name = metadata["inputs"][0]["name"]
output = metadata["outputs"][0]["name"]
shape = [1, len(values)]
raw = struct.pack(f"<{len(values)}f", *values)

header = json.dumps({
    "inputs": [{"name": name, "shape": shape, "datatype": "FP32",
                "parameters": {"binary_data_size": len(raw)}}],
    "outputs": [{"name": output, "parameters": {"binary_data": True}}],
}).encode()
open(f"{out}/oip.bin", "wb").write(header + raw)

request = service_pb2.ModelInferRequest(model_name=metadata["name"])
request.inputs.add(name=name, datatype="FP32", shape=shape)
request.raw_input_contents.append(raw)
message = request.SerializeToString()
open(f"{out}/grpc.bin", "wb").write(b"\x00" + struct.pack(">I", len(message)) + message)
print(len(header))
