#!/usr/bin/env python3
"""Moves messages from the changes dead-letter queue back to the changes queue, after the
cause of their failure is fixed. Each keeps its FIFO group (its product), gets a fresh
deduplication id, and is deleted from the DLQ only once the queue accepted it.
Prints one line per message with the reason it was dead-lettered.
"""

import argparse
import json
import os
import pathlib
import sys
import uuid

import boto3


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--outputs", help="stack outputs JSON (what infra/deploy.py wrote)")
    p.add_argument("--stack", help="read the outputs from this CloudFormation stack instead")
    p.add_argument("--max", type=int, default=0, help="move at most this many (0: all)")
    p.add_argument("--dry-run", action="store_true", help="list, move nothing")
    args = p.parse_args()
    region = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
    if args.stack:
        stack = boto3.client("cloudformation", region_name=region).describe_stacks(StackName=args.stack)["Stacks"][0]
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    elif args.outputs:
        outputs = json.loads(pathlib.Path(args.outputs).read_text())
    else:
        sys.exit("give --outputs or --stack")
    sqs = boto3.client("sqs", region_name=region)
    dlq, queue = outputs["ChangesDeadLetterQueueUrl"], outputs["ChangesQueueUrl"]
    # Only what is there now: a poison message moved back is dead-lettered again at once,
    # and must not be picked up a second time by this run.
    present = int(sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["ApproximateNumberOfMessages"])
                  ["Attributes"]["ApproximateNumberOfMessages"])
    limit = min(args.max, present) if args.max else present
    moved = 0
    while moved < limit:
        messages = sqs.receive_message(
            QueueUrl=dlq, MaxNumberOfMessages=10, VisibilityTimeout=30, WaitTimeSeconds=1,
            AttributeNames=["MessageGroupId"], MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            break
        for m in messages:
            if moved >= limit:
                break
            reason = m.get("MessageAttributes", {}).get("failureReason", {}).get("StringValue", "redrive policy (maxReceiveCount)")
            group = m.get("Attributes", {}).get("MessageGroupId", "redriven")
            print(f"{m['MessageId']}  group={group}  reason={reason}", flush=True)
            if args.dry_run:
                continue
            sqs.send_message(QueueUrl=queue, MessageBody=m["Body"], MessageGroupId=group,
                             MessageDeduplicationId=str(uuid.uuid4()))
            sqs.delete_message(QueueUrl=dlq, ReceiptHandle=m["ReceiptHandle"])
            moved += 1
        if args.dry_run:
            break
    print(f"{'would move' if args.dry_run else 'moved'} {moved if not args.dry_run else 'the messages above'}", file=sys.stderr)


if __name__ == "__main__":
    main()
