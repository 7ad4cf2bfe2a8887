"""boto3's real `comprehend` client against a running oxserve.

Reads texts (a JSON list) from --texts, calls DetectPiiEntities and ContainsPiiEntities for each with
the client signing as any AWS SDK does (SigV4, the inference key as the secret access key), then
makes the calls that must fail and records the error codes boto3 parsed. Prints one JSON object:
{"detect": [...], "contains": [...], "errors": {...}}; the Rust test compares it with the library.
"""

import argparse
import json

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError


def client(endpoint, secret):
    return boto3.client(
        "comprehend",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="oxserve",
        aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1}),
    )


def error_code(call):
    try:
        call()
    except ClientError as e:
        return [e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]]
    return None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--texts", required=True)
    args = parser.parse_args()
    texts = json.load(open(args.texts, encoding="utf-8"))
    ok = client(args.endpoint, args.key)
    detect = [ok.detect_pii_entities(Text=t, LanguageCode="en")["Entities"] for t in texts]
    contains = [ok.contains_pii_entities(Text=t, LanguageCode="en")["Labels"] for t in texts]
    wrong = client(args.endpoint, "not-the-key")
    errors = {
        "wrong_secret": error_code(lambda: wrong.detect_pii_entities(Text="hi", LanguageCode="en")),
        "language": error_code(lambda: ok.detect_pii_entities(Text="hola", LanguageCode="es")),
        "too_large": error_code(lambda: ok.detect_pii_entities(Text="a" * (100 * 1024 + 1), LanguageCode="en")),
    }
    print(json.dumps({"detect": detect, "contains": contains, "errors": errors}))


if __name__ == "__main__":
    main()
