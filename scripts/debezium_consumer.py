#!/usr/bin/env python3
"""A consumer that knows only Debezium's format: it reads a change topic written with JsonConverter's
schema block (schemas.enable=true), decodes each field from its Connect schema (type and semantic name,
as Debezium documents them), applies c/r/u/d in offset order per partition, skips tombstones, and prints
the resulting table as JSON lines sorted by key. Used by the integration tests to check that binlake's
topics read unchanged by Debezium consumers.

usage: debezium_consumer.py BROKERS TOPIC
"""
import base64
import datetime
import decimal
import json
import sys

from confluent_kafka import Consumer, KafkaError, TopicPartition

EPOCH = datetime.datetime(1970, 1, 1)


def decode(field, value):
    if value is None:
        return None
    name = field.get("name")
    kind = field["type"]
    if name == "org.apache.kafka.connect.data.Decimal":
        unscaled = int.from_bytes(base64.b64decode(value), "big", signed=True)
        scale = int(field["parameters"]["scale"])
        return str(decimal.Decimal(unscaled).scaleb(-scale))
    if name == "io.debezium.time.Date":
        return (EPOCH + datetime.timedelta(days=value)).date().isoformat()
    if name == "io.debezium.time.Timestamp":
        return (EPOCH + datetime.timedelta(milliseconds=value)).isoformat(timespec="microseconds")
    if name == "io.debezium.time.MicroTimestamp":
        return (EPOCH + datetime.timedelta(microseconds=value)).isoformat(timespec="microseconds")
    if name == "io.debezium.time.MicroTime":
        return value
    if name == "io.debezium.data.Bits":
        return int.from_bytes(base64.b64decode(value), "little")
    if kind == "bytes":
        return base64.b64decode(value).hex()
    if kind == "struct":
        return {f["field"]: decode(f, value.get(f["field"])) for f in field["fields"]}
    return value


def main():
    brokers, topic = sys.argv[1], sys.argv[2]
    consumer = Consumer({
        "bootstrap.servers": brokers,
        "group.id": "debezium-consumer-check",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
    })
    meta = consumer.list_topics(topic, timeout=10)
    partitions = list(meta.topics[topic].partitions)
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    open_partitions = set(partitions)
    table = {}
    while open_partitions:
        msg = consumer.poll(10)
        if msg is None:
            sys.exit(f"{topic}: no record and no end of partition within 10 s")
        if msg.error():
            if msg.error().code() == KafkaError._PARTITION_EOF:
                open_partitions.discard(msg.partition())
                continue
            sys.exit(f"{topic}: {msg.error()}")
        if msg.value() is None:
            continue  # tombstone
        envelope = json.loads(msg.value())
        key = json.dumps(json.loads(msg.key())["payload"], sort_keys=True)
        schema = {f["field"]: f for f in envelope["schema"]["fields"]}
        payload = envelope["payload"]
        if payload["op"] == "d":
            table.pop(key, None)
        else:
            after_schema = schema["after"]
            after = payload["after"]
            table[key] = {f["field"]: decode(f, after.get(f["field"])) for f in after_schema["fields"]}
    consumer.close()
    for key in sorted(table):
        print(json.dumps(table[key], sort_keys=True))


if __name__ == "__main__":
    main()
