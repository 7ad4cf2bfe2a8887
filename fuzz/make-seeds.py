"""Writes the seed corpus of the fuzz targets (fuzz/corpus/<target>/seed-*): valid inputs and
known-hostile ones, so fuzzing starts from the interesting places and the engine's fuzz_corpus test
replays them. Needs only the Python standard library. Run from the repository root:
    python3 fuzz/make-seeds.py
"""
import gzip, io, json, os, shutil, struct, tarfile, zipfile, zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")


def put(target, name, data):
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(CORPUS, target, "seed-" + name), "wb") as f:
        f.write(data)


# json_tensor
put("json_tensor", "tiny", open(os.path.join(ROOT, "examples/inputs/tiny.json"), "rb").read())
put("json_tensor", "nested", "[[1, 2, 3], [4, 5, 6]]")
put("json_tensor", "ragged", "[[1, 2], [3]]")
put("json_tensor", "shaped", json.dumps({"shape": [2, 2], "data": [1, 2, 3, 4]}))
put("json_tensor", "overflow", json.dumps({"shape": [4294967296, 4294967296, 4294967296], "data": [1]}))
put("json_tensor", "strings", json.dumps([["a", "b"], ["c", "d"]]))
put("json_tensor", "bools", "[true, false, 1, 0]")
put("json_tensor", "huge-numbers", "[1e400, -1e400, 18446744073709551616]")

# manifest
for model in ("tiny", "digits"):
    put("manifest", model, open(os.path.join(ROOT, f"examples/model-store/{model}/MAR-INF/MANIFEST.json"), "rb").read())
put("manifest", "escape", json.dumps({"runtime": "python", "model": {"modelName": "x", "serializedFile": "../../etc/passwd", "handler": "/abs/h.py"}}))
put("manifest", "empty", "{}")


# archive
def zip_bytes(entries):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries:
            # A fixed date keeps the seeds byte-identical from run to run.
            z.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data, zipfile.ZIP_DEFLATED)
    return buf.getvalue()


manifest = open(os.path.join(ROOT, "examples/model-store/tiny/MAR-INF/MANIFEST.json"), "rb").read()
put("archive", "tiny-ts.mar", open(os.path.join(ROOT, "tests/fixtures/torch-model-archiver/tiny_ts.mar"), "rb").read())
put("archive", "zip-dotdot", zip_bytes([("../x", b"x"), ("MAR-INF/MANIFEST.json", manifest)]))
put("archive", "zip-abs", zip_bytes([("/abs", b"x")]))
put("archive", "zip-backslash", zip_bytes([("..\\x", b"x")]))
put("archive", "zip-bomb", zip_bytes([("big.bin", b"\0" * (8 << 20))]))
put("archive", "zip-many", zip_bytes([(f"f{i}", b"") for i in range(100)]))


def tgz_bytes(members):
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz, tarfile.open(fileobj=gz, mode="w") as t:
        for info, data in members:
            t.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


link = tarfile.TarInfo("link"); link.type = tarfile.SYMTYPE; link.linkname = "/etc"
through = tarfile.TarInfo("link/passwd"); through.size = 1
hard = tarfile.TarInfo("hard"); hard.type = tarfile.LNKTYPE; hard.linkname = "/etc/passwd"
dev = tarfile.TarInfo("dev"); dev.type = tarfile.CHRTYPE; dev.devmajor = 1; dev.devminor = 3
ok = tarfile.TarInfo("m/MAR-INF/MANIFEST.json"); ok.size = len(manifest)
put("archive", "tgz-symlink-chain", tgz_bytes([(link, None), (through, b"x")]))
put("archive", "tgz-hardlink", tgz_bytes([(hard, None)]))
put("archive", "tgz-device", tgz_bytes([(dev, None)]))
put("archive", "tgz-manifest", tgz_bytes([(ok, manifest)]))

# url_allowlist
for i, url in enumerate([
    "https://models.example.com/releases/resnet.mar",
    "https://models.example.com/releases/../admin/x.mar",
    "https://models.example.com/releases/%2e%2e/x.mar",
    "https://models.example.com@evil.com/releases/x.mar",
    "https://models.example.com.evil.com/releases/x.mar",
    "http://167772165:8000/m/x.mar",
    "http://[::ffff:10.0.0.5]:8000/m/x.mar",
    "http://10.0.0.5:8000/m",
    "file:///etc/passwd",
    "HTTPS://MODELS.EXAMPLE.COM/releases/x.mar",
]):
    put("url_allowlist", str(i), url)


# image_decode: tiny valid images written by hand (PNG, BMP) plus a pixel bomb header.
def png(width, height, rows):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    raw = b"".join(b"\0" + row for row in rows)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


put("image_decode", "png-2x2", png(2, 2, [b"\xff\0\0\0\xff\0", b"\0\0\xff\xff\xff\xff"]))
put("image_decode", "png-bomb", png(100000, 100000, [b"\0" * 3]))
put("image_decode", "png-truncated", png(2, 2, [b"\xff\0\0\0\xff\0", b"\0\0\xff\xff\xff\xff"])[:40])
bmp_pixels = b"\0\0\xff" + b"\0"  # one red pixel, row padded to 4 bytes
bmp = b"BM" + struct.pack("<IHHI", 14 + 40 + len(bmp_pixels), 0, 0, 54) + struct.pack(
    "<IiiHHIIiiII", 40, 1, 1, 1, 24, 0, len(bmp_pixels), 2835, 2835, 0, 0) + bmp_pixels
put("image_decode", "bmp-1x1", bmp)

# request_items: first byte picks the content type (0 json, 1 text, 2 png, else none).
put("request_items", "json-data", b"\0" + json.dumps({"data": [1, 2, 3]}).encode())
put("request_items", "json-instances", b"\0" + json.dumps({"instances": [{"b64": "aGVsbG8="}, "x"]}).encode())
put("request_items", "json-list", b"\0" + json.dumps(["aGVsbG8=", "not base64!"]).encode())
put("request_items", "text", b"\1The cat sits on the mat.")
put("request_items", "png", b"\2" + png(2, 2, [b"\xff\0\0\0\xff\0", b"\0\0\xff\xff\xff\xff"]))
put("request_items", "bad-utf8", b"\3\xff\xfe\xfd")

# binary_tensor: one byte of element count, then raw little-endian bytes.
put("binary_tensor", "four-f32", bytes([4]) + struct.pack("<4f", 1.0, 2.0, 3.0, 4.0))
put("binary_tensor", "bytes-elements", bytes([2]) + struct.pack("<I", 3) + b"abc" + struct.pack("<I", 1) + b"d")
put("binary_tensor", "short", bytes([200]) + b"\0\0")
put("binary_tensor", "huge-length-prefix", bytes([1]) + b"\xff\xff\xff\xff")

# binary_request: two bytes (big-endian) of Inference-Header-Content-Length, then the body.
def binary_request(header, tail):
    header = json.dumps(header).encode()
    return struct.pack(">H", len(header)) + header + tail

put("binary_request", "one-input", binary_request({"inputs": [{"name": "input", "shape": [1, 2], "datatype": "FP32", "parameters": {"binary_data_size": 8}}]}, struct.pack("<2f", 1, 2)))
put("binary_request", "length-past-body", struct.pack(">H", 60000) + b"{}")
put("binary_request", "cut-json", struct.pack(">H", 5) + b'{"inputs": []}')

# multipart with boundary x
put("multipart", "two-parts", b'--x\r\nContent-Disposition: form-data; name="data"\r\nContent-Type: image/png\r\n\r\nPNGDATA\r\n--x\r\nContent-Disposition: form-data; name="other"\r\n\r\nhello\r\n--x--\r\n')
put("multipart", "unterminated", b'--x\r\nContent-Disposition: form-data; name="data"\r\n\r\nabc')
put("multipart", "no-parts", b"--x--\r\n")
