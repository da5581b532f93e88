"""The baseline: a worker in the classic style of the 2018 article's Lambda, written for this
project's benchmark (ingest-bench/README.md).

It does what that worker did, with boto3: GetObject, read the whole body, decode it,
csv.DictReader over it, and send the rows with sequential BatchPutMessage calls of 100
messages each (messageId: the row's number, payload: json.dumps of the row). Endpoints,
region and credentials come from the environment (AWS_ENDPOINT_URL_S3,
AWS_ENDPOINT_URL_IOTANALYTICS, AWS_DEFAULT_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY),
which `ingest-bench` sets to its local stack.

    python worker.py --bucket BUCKET --key KEY --channel CHANNEL

Prints one JSON line: {"rows", "seconds", "rows_per_second", "peak_rss_kb", "error_entries"}.
Needs boto3/botocore 1.40.40 (requirements.txt): later releases dropped the iotanalytics client.
"""

import argparse
import csv
import io
import json
import resource
import time

import boto3
from botocore.config import Config

BATCH_SIZE = 100

# Clients are created once, at import, as a Lambda function creates them at cold start.
# Local endpoints do not resolve bucket subdomains, hence path-style addressing.
s3 = boto3.client("s3", config=Config(s3={"addressing_style": "path"}))
iotanalytics = boto3.client("iotanalytics")


def send(channel, batch):
    """One BatchPutMessage call; returns how many entries the service refused."""
    response = iotanalytics.batch_put_message(channelName=channel, messages=batch)
    return len(response.get("batchPutMessageErrorEntries", []))


def ingest(bucket, key, channel):
    """Reads the whole object, then sends its rows in sequential batches."""
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    reader = csv.DictReader(io.StringIO(body.decode("utf-8")))
    rows = 0
    errors = 0
    batch = []
    for row in reader:
        rows += 1
        batch.append({"messageId": str(rows), "payload": json.dumps(row)})
        if len(batch) == BATCH_SIZE:
            errors += send(channel, batch)
            batch = []
    if batch:
        errors += send(channel, batch)
    return rows, errors


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--channel", required=True)
    args = parser.parse_args()

    started = time.perf_counter()
    rows, errors = ingest(args.bucket, args.key, args.channel)
    seconds = time.perf_counter() - started
    print(
        json.dumps(
            {
                "rows": rows,
                "seconds": seconds,
                "rows_per_second": rows / seconds if seconds > 0 else 0.0,
                # Linux reports ru_maxrss in kilobytes.
                "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                "error_entries": errors,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
