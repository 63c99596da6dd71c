"""How many SMS a second the SMS channel hands to the provider, in batches of 100.

Starts the local SMS sink (``tanfang.notifications.sinks.sms_server``) as its own process,
then sends N messages from ONE thread through ``AliyunSms`` (Alibaba's SDK, signed requests,
``SendBatchSms`` of 100) and reports messages a second, requests a second, and the sink's
count (which must equal N: nothing lost, nothing doubled). No database: this measures the
channel and the sink only; ``bench_outbox.py`` measures the whole outbox.

Usage: ``.venv/bin/python bench/bench_sms_channel.py [-n 20000] [--batch 100]``
"""

from __future__ import annotations

import argparse
import http.client
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tanfang.notifications.channels.base import Outcome, Outgoing  # noqa: E402
from tanfang.notifications.channels.sms_aliyun import AliyunSms  # noqa: E402
from tanfang.notifications.sinks.sms_server import DEMO_ACCESS_KEY_ID, DEMO_SECRET  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()
    sink = subprocess.Popen(
        [sys.executable, "-m", "tanfang.notifications.sinks.sms_server", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert sink.stdout is not None
        endpoint = sink.stdout.readline().strip().split("=", 1)[1]
        channel = AliyunSms(
            endpoint=endpoint,
            protocol="http",
            access_key_id=DEMO_ACCESS_KEY_ID,
            access_key_secret=DEMO_SECRET,
            sign_name="探访",
            rate=0,
        )
        messages = [
            Outgoing(
                message_id=i,
                key=f"bench-{i}",
                address=f"13{i % 10}{i:08d}"[-11:],
                body="",
                sms_template_code="SMS_TF_FAMILY",
                sms_params={"elder": "王奶奶", "what": "发现需求", "time": "10:30", "n": i},
            )
            for i in range(args.n)
        ]
        start = time.perf_counter()
        sent = 0
        for offset in range(0, args.n, args.batch):
            chunk = messages[offset : offset + args.batch]
            results = channel.send(chunk, batch_key=f"bench-b{offset}")
            sent += sum(r.outcome == Outcome.SENT for r in results)
        elapsed = time.perf_counter() - start
        host, port = endpoint.split(":")
        connection = http.client.HTTPConnection(host, int(port))
        connection.request("GET", "/_sink/stats")
        stats = json.loads(connection.getresponse().read())
        requests = -(-args.n // args.batch)
        print(
            f"{args.n} SMS in {elapsed:.2f} s: {args.n / elapsed:,.0f} messages/s, "
            f"{requests / elapsed:,.0f} requests/s ({elapsed / requests * 1000:.1f} ms each); "
            f"sent={sent} sink={stats['messages']} duplicates={stats['duplicates']}"
        )
    finally:
        sink.terminate()
        sink.wait(timeout=10)


if __name__ == "__main__":
    main()
