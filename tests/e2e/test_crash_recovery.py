"""A real crash: a runner subprocess under concurrent load is killed with SIGKILL at a random moment.

After each kill, every command whose ack the client read is in the journal at the acked seq with
the acked events, no command is journaled twice, a retried order is never accepted twice, cash is
conserved, and recovery from snapshots equals a replay from seq 1.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec
import pytest
from structlog.testing import capture_logs

from tradehall.domain.events import OrderAccepted
from tradehall.engine import Engine
from tradehall.journal import EngineFactory, read_records, recover

CHILD = Path(__file__).with_name("crash_runner_child.py")
FACTORY = EngineFactory(Engine, Engine.restore)


class Child:
    def __init__(self, data_dir: Path, seed: int, retry_file: Path | None = None) -> None:
        args = [sys.executable, str(CHILD), str(data_dir), str(seed)]
        if retry_file is not None:
            args.append(str(retry_file))
        self.process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[dict[str, Any]] = []
        self.ready = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            if not raw.endswith("\n"):
                break  # a line cut by the kill was never fully received
            line = json.loads(raw)
            self.lines.append(line)
            if "ready" in line:
                self.ready.set()

    def kill_after(self, seconds: float, min_acks: int = 50) -> None:
        """SIGKILL `seconds` after the load has produced `min_acks` acks (a busy machine starts slowly)."""
        deadline = time.monotonic() + 60
        while len(self.lines) < min_acks and time.monotonic() < deadline and self.process.poll() is None:
            time.sleep(0.01)
        if len(self.lines) < min_acks:
            self.process.kill()
            _, stderr = self.process.communicate()
            pytest.fail(f"the runner produced no load: {stderr}")
        time.sleep(seconds)
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(30)
        self._reader.join(30)

    @property
    def acks(self) -> dict[str, dict[str, Any]]:
        return {line["cid"]: line for line in self.lines if "cid" in line}

    @property
    def submitted(self) -> dict[str, str]:
        return {line["submit"]: line["command"] for line in self.lines if "submit" in line}


def digest(events: object) -> str:
    return hashlib.sha256(msgspec.msgpack.encode(events)).hexdigest()


def check_journal(data_dir: Path, acks: dict[str, dict[str, Any]]) -> int:
    records = list(read_records(data_dir / "journal"))
    by_cid = {record.command.correlation_id: record for record in records}
    assert len(by_cid) == len(records), "a command was journaled twice"
    for cid, ack in acks.items():
        record = by_cid.get(cid)
        assert record is not None, f"acked command {cid} (seq {ack['seq']}) is missing after the crash"
        assert record.seq == ack["seq"]
        assert digest(record.events) == ack["digest"], f"acked result of {cid} changed"
    accepted = Counter(
        (event.account_id, event.client_order_id)
        for record in records
        for event in record.events
        if isinstance(event, OrderAccepted) and event.client_order_id is not None
    )
    assert not [key for key, count in accepted.items() if count > 1], "an order was accepted twice"
    with capture_logs():
        recovered = recover(data_dir / "journal", data_dir / "snapshots", FACTORY, open_for_append=False,
                            verify_events=True)
        scratch = recover(data_dir / "journal", data_dir / "snapshots", FACTORY, open_for_append=False,
                          use_snapshots=False)
    assert recovered.last_seq == records[-1].seq
    assert recovered.engine.state_hash() == scratch.engine.state_hash()
    assert set(recovered.engine.ledger.totals().values()) == {0}, "cash is not conserved"
    return recovered.last_seq


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_every_acked_command_survives_sigkill_and_none_is_applied_twice(tmp_path: Path) -> None:
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    all_acks: dict[str, dict[str, Any]] = {}

    first = Child(tmp_path, seed)
    first.kill_after(rng.uniform(0.3, 1.5))
    all_acks.update(first.acks)
    last_seq = check_journal(tmp_path, all_acks)

    # a write cut short by the kill (rare with SIGKILL, certain with a power cut): a partial frame
    newest = sorted((tmp_path / "journal").glob("*.wal"))[-1]
    with newest.open("ab") as handle:
        handle.write(b"TRJ1" + rng.randbytes(rng.randrange(0, 300)))
    assert check_journal(tmp_path, all_acks) == last_seq

    unacked = [command for cid, command in first.submitted.items() if cid not in first.acks]
    retry_file = tmp_path / "retries.jsonl"
    retry_file.write_text("".join(
        command.replace(f'"correlation_id":"{cid}"', f'"correlation_id":"{cid}-retry"') + "\n"
        for cid, command in ((json.loads(c)["correlation_id"], c) for c in unacked)
    ))
    second = Child(tmp_path, seed + 1, retry_file)
    second.kill_after(rng.uniform(0.3, 1.5))
    assert (second.lines and second.lines[0].get("cid", "").endswith("-retry")) or not unacked
    all_acks.update(second.acks)
    assert check_journal(tmp_path, all_acks) > last_seq, f"seed {seed}"

    third = Child(tmp_path, seed + 2)
    assert third.ready.wait(60), "the runner did not restart after the second crash"
    third.process.terminate()
    third.process.wait(30)
