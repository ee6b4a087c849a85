#!/usr/bin/env python3
"""Creates or changes a SCRAM-SHA-512 user on the test SCRAM broker (scripts/services' kafka-scram).

The admin request itself has to be authenticated; tansu accepts SASL PLAIN with any password (it checks
only SCRAM), which is how this script logs in. Exit status 0 once the broker has stored the credential.

usage: kafka_scram_user.py --brokers HOST:PORT --ca CA.pem --user NAME --password PASSWORD
"""
import argparse
import sys

from confluent_kafka.admin import (
    AdminClient,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--brokers", required=True)
    parser.add_argument("--ca", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    args = parser.parse_args()
    admin = AdminClient(
        {
            "bootstrap.servers": args.brokers,
            "security.protocol": "SASL_SSL",
            "ssl.ca.location": args.ca,
            "sasl.mechanism": "PLAIN",
            "sasl.username": "binlake-test-admin",
            "sasl.password": "unchecked",
        }
    )
    upsert = UserScramCredentialUpsertion(
        args.user,
        ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192),
        args.password.encode(),
    )
    futures = admin.alter_user_scram_credentials([upsert], request_timeout=30)
    for user, future in futures.items():
        future.result(timeout=60)
        print(f"SCRAM-SHA-512 credential stored for {user}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
