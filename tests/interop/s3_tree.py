"""Copies a folder tree into an S3 prefix, or an S3 prefix into a folder, with boto3.

The batch-job tests use it to fill a bucket on a loopback `moto_server` and to read back what a
job wrote there, so the comparison is made with a client that is not oxserve's own.

    s3_tree.py upload DIR s3://bucket/prefix/ [BUCKET...]  (creates the buckets when missing)
    s3_tree.py download s3://bucket/prefix/ DIR    (every object under the prefix)

The endpoint and credentials come from the standard AWS environment (AWS_ENDPOINT_URL...).
"""

import os
import sys

import boto3


def split(uri):
    assert uri.startswith("s3://"), uri
    bucket, _, prefix = uri[len("s3://"):].partition("/")
    return bucket, prefix


def ensure_buckets(s3, names):
    existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    for name in names:
        if name not in existing:
            s3.create_bucket(Bucket=name)


def upload(folder, uri, *more_buckets):
    s3 = boto3.client("s3")
    bucket, prefix = split(uri)
    ensure_buckets(s3, [bucket, *more_buckets])
    count = 0
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            key = prefix + os.path.relpath(path, folder).replace(os.sep, "/")
            with open(path, "rb") as f:
                s3.put_object(Bucket=bucket, Key=key, Body=f.read())
            count += 1
    print(count)


def download(uri, folder):
    s3 = boto3.client("s3")
    bucket, prefix = split(uri)
    count = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            relative = obj["Key"][len(prefix):]
            path = os.path.join(folder, *relative.split("/"))
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read())
            count += 1
    print(count)


if __name__ == "__main__":
    command, a, b, *rest = sys.argv[1:]
    if command == "upload":
        upload(a, b, *rest)
    elif command == "download":
        download(a, b)
    else:
        sys.exit(f"unknown command {command}")
