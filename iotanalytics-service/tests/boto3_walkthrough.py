"""The 2018 article's walk-through through boto3 against the local IoT Analytics service.

Needs boto3==1.40.40 (later releases dropped the iotanalytics client). With
AWS_ENDPOINT_URL_IOTANALYTICS set it uses that endpoint; otherwise it starts
`s3-ingest serve` (binary from $S3_INGEST_BIN, default target/debug/s3-ingest) on a
temporary data directory and stops it at the end. Arguments are passed to `serve`, e.g.
`--storage s3://iotanalytics/service/` for the S3 storage backend on the embedded S3.

    python3 iotanalytics-service/tests/boto3_walkthrough.py [SERVE ARGUMENTS]
"""

import os
import subprocess
import sys
import tempfile
import time
import urllib.request

import boto3
import botocore.exceptions


def start_server():
    binary = os.environ.get("S3_INGEST_BIN", "target/debug/s3-ingest")
    data_dir = tempfile.mkdtemp(prefix="iotanalytics-boto3-")
    proc = subprocess.Popen(
        [binary, "serve", "--data-dir", data_dir, *sys.argv[1:]],
        stdout=subprocess.PIPE,
        text=True,
    )
    env = {}
    for line in proc.stdout:
        if line.startswith("export "):
            key, value = line[len("export "):].strip().split("=", 1)
            env[key] = value
        if line.startswith("#"):
            break
    os.environ.update(env)
    return proc


def client_error_code(call):
    try:
        call()
    except botocore.exceptions.ClientError as e:
        return e.response["Error"]["Code"]
    raise AssertionError("the call was expected to fail")


def more_operations(iota, channel, datastore, pipeline):
    """Tags, updates, logging options, RunPipelineActivity and reprocessing, with one error each."""
    region = os.environ.get("AWS_REGION", "us-east-1")
    arn = f"arn:aws:iotanalytics:{region}:000000000000:channel/{channel}"
    iota.tag_resource(resourceArn=arn, tags=[{"key": "env", "value": "test"}])
    assert iota.list_tags_for_resource(resourceArn=arn)["tags"] == [{"key": "env", "value": "test"}]
    iota.untag_resource(resourceArn=arn, tagKeys=["env"])
    assert iota.list_tags_for_resource(resourceArn=arn)["tags"] == []
    assert client_error_code(lambda: iota.list_tags_for_resource(resourceArn=arn + "_missing")) == "ResourceNotFoundException"

    iota.update_channel(channelName=channel, retentionPeriod={"numberOfDays": 30})
    assert iota.describe_channel(channelName=channel)["channel"]["retentionPeriod"]["numberOfDays"] == 30
    iota.update_datastore(datastoreName=datastore, retentionPeriod={"unlimited": True})
    assert client_error_code(lambda: iota.update_datastore(datastoreName="missing")) == "ResourceNotFoundException"

    role = "arn:aws:iam::000000000000:role/iotanalytics-logs"
    iota.put_logging_options(loggingOptions={"roleArn": role, "level": "ERROR", "enabled": True})
    assert iota.describe_logging_options()["loggingOptions"]["roleArn"] == role
    assert client_error_code(lambda: iota.put_logging_options(
        loggingOptions={"roleArn": "arn:aws:iam::000000000000:user/not-a-role", "level": "ERROR", "enabled": True})) == "InvalidRequestException"

    out = iota.run_pipeline_activity(
        pipelineActivity={"math": {"name": "m", "attribute": "tempC", "math": "((temp - 32) * 5.0) / 9.0"}},
        payloads=[b'{"temp": 212}'],
    )
    assert out["payloads"] == [b'{"temp":212,"tempC":100.0}'], out
    assert client_error_code(lambda: iota.run_pipeline_activity(
        pipelineActivity={"lambda": {"name": "l", "lambdaName": "f", "batchSize": 1}},
        payloads=[b"{}"])) == "InvalidRequestException"

    run_id = iota.start_pipeline_reprocessing(pipelineName=pipeline)["reprocessingId"]
    for _ in range(600):
        runs = iota.describe_pipeline(pipelineName=pipeline)["pipeline"]["reprocessingSummaries"]
        status = next(r["status"] for r in runs if r["id"] == run_id)
        if status != "RUNNING":
            break
        time.sleep(0.1)
    assert status == "SUCCEEDED", runs
    assert client_error_code(lambda: iota.cancel_pipeline_reprocessing(
        pipelineName=pipeline, reprocessingId="missing")) == "ResourceNotFoundException"


def s3_client():
    """A client of the stack's embedded S3, when the endpoint is known."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3")
    if endpoint is None:
        return None
    import botocore.config
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=os.environ.get("AWS_REGION", "us-east-1"),
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "local"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "local-secret"),
        config=botocore.config.Config(s3={"addressing_style": "path"}),
    )


def create_triggered_dataset(iota, s3, name, trigger, datastore, bucket):
    """A dataset that runs when `trigger` succeeds and delivers to the embedded S3; a bad
    schedule expression and an IoT Events destination are refused."""
    bad = client_error_code(lambda: iota.create_dataset(
        datasetName=name + "_bad",
        actions=[{"actionName": "a", "queryAction": {"sqlQuery": "select 1"}}],
        triggers=[{"schedule": {"expression": "cron(0 12 * * * *)"}}]))
    assert bad == "InvalidRequestException", bad
    events = client_error_code(lambda: iota.create_dataset(
        datasetName=name + "_events",
        actions=[{"actionName": "a", "queryAction": {"sqlQuery": "select 1"}}],
        contentDeliveryRules=[{"destination": {"iotEventsDestinationConfiguration": {
            "inputName": "input", "roleArn": "arn:aws:iam::000000000000:role/events"}}}]))
    assert events == "InvalidRequestException", events
    s3.create_bucket(Bucket=bucket)
    iota.create_dataset(
        datasetName=name,
        actions=[{"actionName": "a", "queryAction": {"sqlQuery": f"select temp from {datastore}"}}],
        triggers=[{"dataset": {"name": trigger}}],
        contentDeliveryRules=[{"destination": {"s3DestinationConfiguration": {
            "bucket": bucket, "key": "d/!{iotanalytics:versionId}.csv",
            "roleArn": "arn:aws:iam::000000000000:role/delivery"}}}],
    )


def check_delivered(iota, s3, name, bucket):
    for _ in range(600):
        contents = iota.list_dataset_contents(datasetName=name)["datasetContentSummaries"]
        if contents and contents[0]["status"]["state"] == "SUCCEEDED":
            listed = s3.list_objects_v2(Bucket=bucket, Prefix="d/").get("Contents", [])
            if listed:
                break
        time.sleep(0.1)
    assert listed, contents
    assert listed[0]["Key"] == f"d/{contents[0]['version']}.csv", (listed, contents)
    body = s3.get_object(Bucket=bucket, Key=listed[0]["Key"])["Body"].read().decode()
    assert body == "temp\n10\n50\n", body


def main():
    proc = None
    if "AWS_ENDPOINT_URL_IOTANALYTICS" not in os.environ:
        proc = start_server()
    try:
        suffix = str(int(time.time() * 1000))
        iota = boto3.client(
            "iotanalytics",
            endpoint_url=os.environ["AWS_ENDPOINT_URL_IOTANALYTICS"],
            region_name=os.environ.get("AWS_REGION", "us-east-1"),
            aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "local"),
            aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "local-secret"),
        )
        datastore, channel = f"py_datastore_{suffix}", f"py_channel_{suffix}"
        dataset = f"py_dataset_{suffix}"
        iota.create_datastore(datastoreName=datastore)
        iota.create_channel(channelName=channel)
        iota.create_pipeline(
            pipelineName=f"py_pipeline_{suffix}",
            pipelineActivities=[
                {"channel": {"name": "Source", "channelName": channel, "next": "Sink"}},
                {"datastore": {"name": "Sink", "datastoreName": datastore}},
            ],
        )
        out = iota.batch_put_message(
            channelName=channel,
            messages=[
                {"messageId": "1", "payload": b'{"temp": 10}'},
                {"messageId": "2", "payload": b'{"temp": 50}'},
                {"messageId": "3", "payload": b'{"bad-name": 1}'},
            ],
        )
        assert [e["messageId"] for e in out["batchPutMessageErrorEntries"]] == ["3"], out
        assert client_error_code(lambda: iota.create_channel(channelName=channel)) == "ResourceAlreadyExistsException"
        assert client_error_code(lambda: iota.describe_channel(channelName="missing")) == "ResourceNotFoundException"

        iota.create_dataset(
            datasetName=dataset,
            actions=[{"actionName": "a", "queryAction": {"sqlQuery": f"select temp from {datastore}"}}],
        )
        s3 = s3_client()
        triggered, bucket = f"py_triggered_{suffix}", f"py-delivery-{suffix}"
        if s3 is not None:
            create_triggered_dataset(iota, s3, triggered, dataset, datastore, bucket)
        iota.create_dataset_content(datasetName=dataset)
        for _ in range(600):
            content = iota.get_dataset_content(datasetName=dataset, versionId="$LATEST")
            if content["status"]["state"] != "CREATING":
                break
            time.sleep(0.1)
        assert content["status"]["state"] == "SUCCEEDED", content
        csv = urllib.request.urlopen(content["entries"][0]["dataURI"]).read().decode()
        assert csv == "temp\n10\n50\n", csv
        if s3 is not None:
            check_delivered(iota, s3, triggered, bucket)
        more_operations(iota, channel, datastore, f"py_pipeline_{suffix}")
        print("boto3 walk-through: ok")
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    sys.exit(main())
