"""A typical Python Lambda handler for SQS batches into Aurora, for comparison.

For each SQS message it parses the body and calls the RDS Data API's
execute_statement once per record, with type hints, outside any
transaction: the shape most tutorials show. Prints the rows written and the
wall time as JSON. Usage: per_record_insert.py BODIES_FILE TABLE
(BODIES_FILE has one SQS message body per line.)
"""

import json
import os
import sys
import time

import boto3

CLUSTER_ARN = "arn:aws:rds:us-east-1:000000000000:cluster:local"
SECRET_ARN = "arn:aws:secretsmanager:us-east-1:000000000000:secret:local"


def handler(event, client, table):
    sql = (
        f"INSERT INTO {table} (record_id, n, amount, label, day, created_at) "
        "VALUES (:record_id, :n, :amount, :label, :day, :created_at) ON CONFLICT (record_id) DO NOTHING"
    )
    written = 0
    for message in event["Records"]:
        envelope = json.loads(message["body"])
        for record in envelope["records"]:
            data = record["data"]
            client.execute_statement(
                resourceArn=CLUSTER_ARN,
                secretArn=SECRET_ARN,
                database=os.environ.get("DB_NAME", "pipeline"),
                sql=sql,
                parameters=[
                    {"name": "record_id", "value": {"stringValue": record["id"]}},
                    {"name": "n", "value": {"longValue": int(data["n"])}},
                    {"name": "amount", "value": {"stringValue": data["amount"]}, "typeHint": "DECIMAL"},
                    {"name": "label", "value": {"stringValue": data["label"]}},
                    {"name": "day", "value": {"stringValue": data["day"]}, "typeHint": "DATE"},
                    {"name": "created_at", "value": {"stringValue": data["created_at"].replace("T", " ")}, "typeHint": "TIMESTAMP"},
                ],
            )
            written += 1
    return written


def main():
    bodies_file, table = sys.argv[1:3]
    with open(bodies_file, encoding="utf-8") as lines:
        event = {"Records": [{"messageId": str(i), "body": line} for i, line in enumerate(lines) if line.strip()]}
    client = boto3.client(
        "rds-data",
        endpoint_url=os.environ.get("PIPELINE_DATA_API_URL", "http://127.0.0.1:8089"),
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    started = time.perf_counter()
    rows = handler(event, client, table)
    print(json.dumps({"rows": rows, "seconds": time.perf_counter() - started}))


if __name__ == "__main__":
    main()
