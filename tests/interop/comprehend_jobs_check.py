"""boto3's real `comprehend` client driving oxserve's PII job operations.

    comprehend_jobs_check.py --endpoint URL --key KEY start --name N --input S3 --output S3 --mode M [--types T,T]
    comprehend_jobs_check.py ... wait --job-id ID        (polls Describe until the job has finished)
    comprehend_jobs_check.py ... stop --job-id ID
    comprehend_jobs_check.py ... list --name N
    comprehend_jobs_check.py ... errors

Each prints one JSON object; timestamps are printed as the seconds boto3 parsed them into.
"""

import argparse
import json
import time

# The client (SigV4 with the inference key as the secret) and the error reading are the
# synchronous check's, beside this file.
from comprehend_check import client, error_code


def plain(value):
    if hasattr(value, "timestamp"):
        return value.timestamp()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--key", required=True)
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("start")
    start.add_argument("--name", required=True)
    start.add_argument("--input", required=True)
    start.add_argument("--output", required=True)
    start.add_argument("--mode", required=True)
    start.add_argument("--types", default="")
    for name in ("wait", "stop"):
        sub.add_parser(name).add_argument("--job-id", required=True)
    sub.add_parser("list").add_argument("--name", required=True)
    sub.add_parser("errors")
    args = parser.parse_args()

    comprehend = client(args.endpoint, args.key)
    role = "arn:aws:iam::000000000000:role/comprehend-pii"
    if args.command == "start":
        request = dict(
            JobName=args.name,
            InputDataConfig={"S3Uri": args.input, "InputFormat": "ONE_DOC_PER_FILE"},
            OutputDataConfig={"S3Uri": args.output},
            Mode=args.mode,
            DataAccessRoleArn=role,
            LanguageCode="en",
        )
        if args.types:
            request["RedactionConfig"] = {
                "PiiEntityTypes": args.types.split(","),
                "MaskMode": "REPLACE_WITH_PII_ENTITY_TYPE",
            }
        answer = comprehend.start_pii_entities_detection_job(**request)
        print(json.dumps({"JobId": answer["JobId"], "JobStatus": answer["JobStatus"], "JobArn": answer["JobArn"]}))
    elif args.command == "wait":
        deadline = time.time() + 180
        while True:
            job = comprehend.describe_pii_entities_detection_job(JobId=args.job_id)["PiiEntitiesDetectionJobProperties"]
            if job["JobStatus"] in ("COMPLETED", "FAILED", "STOPPED") or time.time() > deadline:
                print(json.dumps(plain(job)))
                return
            time.sleep(0.2)
    elif args.command == "stop":
        print(json.dumps(comprehend.stop_pii_entities_detection_job(JobId=args.job_id)))
    elif args.command == "list":
        pages = comprehend.get_paginator("list_pii_entities_detection_jobs").paginate(
            Filter={"JobName": args.name}, PaginationConfig={"PageSize": 1}
        )
        jobs = [plain(j) for page in pages for j in page["PiiEntitiesDetectionJobPropertiesList"]]
        print(json.dumps({"jobs": jobs}))
    elif args.command == "errors":
        base = dict(
            InputDataConfig={"S3Uri": "s3://calls/in/"},
            OutputDataConfig={"S3Uri": "s3://results/x/"},
            DataAccessRoleArn=role,
            LanguageCode="en",
        )
        print(json.dumps({
            "unknown_job": error_code(lambda: comprehend.describe_pii_entities_detection_job(JobId="0" * 32)),
            "stop_unknown": error_code(lambda: comprehend.stop_pii_entities_detection_job(JobId="0" * 32)),
            "no_redaction_config": error_code(
                lambda: comprehend.start_pii_entities_detection_job(Mode="ONLY_REDACTION", **base)),
            "local_input": error_code(lambda: comprehend.start_pii_entities_detection_job(
                Mode="ONLY_OFFSETS", **{**base, "InputDataConfig": {"S3Uri": "/etc/"}})),
            "language": error_code(lambda: comprehend.start_pii_entities_detection_job(
                Mode="ONLY_OFFSETS", **{**base, "LanguageCode": "es"})),
        }))


if __name__ == "__main__":
    main()
