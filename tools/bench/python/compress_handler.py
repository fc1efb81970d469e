"""A typical Python Lambda handler that gzips an S3 object, for comparison.

It reads the whole object into memory, compresses it at level 6 and writes
it back: the shape most tutorials show. Prints wall time and peak memory
as JSON. Usage: compress_handler.py BUCKET KEY ARCHIVE_KEY
"""

import gzip
import json
import os
import resource
import sys
import time

import boto3
from botocore.config import Config


def handler(s3, bucket, key, archive_key):
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    compressed = gzip.compress(body, compresslevel=6)
    s3.put_object(Bucket=bucket, Key=archive_key, Body=compressed, ContentEncoding="gzip")


def main():
    bucket, key, archive_key = sys.argv[1:4]
    s3 = boto3.client(
        "s3",
        endpoint_url=os.environ.get("AWS_ENDPOINT_URL", "http://127.0.0.1:4566"),
        region_name=os.environ.get("AWS_REGION", "us-east-1"),
        config=Config(s3={"addressing_style": "path"}),
    )
    started = time.perf_counter()
    handler(s3, bucket, key, archive_key)
    seconds = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": seconds, "peak_rss_bytes": peak_kib * 1024}))


if __name__ == "__main__":
    main()
