"""End-to-end delivery between a kiosk's outbox and the authority's collector: what travels
beside the records and what the collector answers (edge/outputs/fleet.py sends, authority/fleetview.py
collects). A broker's PUBACK only says the broker has a message; a broker that crashes before
saving loses it. So the collector, not the broker, says what has arrived.

- Every record (screening, event) is an envelope of version 2: the outbox row's JSON plus
  `stream` (which audit database counts, made once with it: a reinstalled kiosk starts a new
  one), `seq` (the outbox row's number in that stream: it survives restarts and is never reused)
  and `floor` (the lowest seq the kiosk still holds: one below it that never came is gone).
  Version 1 records (no seq) are still read, by uuid.
- The collector keeps what it received by kiosk, stream and seq (a repeat is dropped), and
  publishes per stream a retained ack, the highest seq up to which it holds every record, and,
  for a hole it sees (seq 5 after 2), a resend request naming the missing ranges.
- The kiosk marks a row delivered only when an ack covers it, re-sends what is asked, and
  re-sends on its own what stays unacknowledged (after a reconnect, and after a bounded wait).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

RECORD_VERSION = 2  # records without "v" are version 1: no stream, seq or floor
ACK_VERSION = 1
MAX_ASKED = 1000  # seqs one resend request may name (the rest is asked for later)


def ack_topic(base: str, stream: str) -> str:
    """base: mpox/<site>/<kiosk>. Retained, written by the collector."""
    return f"{base}/ack/{stream}"


def resend_topic(base: str, stream: str) -> str:
    return f"{base}/resend/{stream}"


@dataclass(frozen=True)
class Sequenced:
    """Where a version-2 record stands in its kiosk's stream."""

    stream: str
    seq: int
    floor: int


def envelope(payload: str, stream: str, seq: int, floor: int) -> str:
    """An outbox row's JSON as it is published: version 2, with its place in the stream."""
    try:
        body = json.loads(payload)
    except ValueError:
        body = None
    if not isinstance(body, dict):  # a damaged row still takes its place, so the stream has no hole
        body = {"damaged": str(payload)[:200]}
    return json.dumps({**body, "v": RECORD_VERSION, "stream": stream, "seq": seq, "floor": floor})


def sequenced(body: dict) -> Sequenced | None:
    """The record's place in its stream; None for a version-1 record. ValueError when a
    version-2 record's numbers do not make sense."""
    if body.get("v", 1) < RECORD_VERSION:
        return None
    stream, seq, floor = body.get("stream"), body.get("seq"), body.get("floor", body.get("seq"))
    if not (isinstance(stream, str) and stream.isalnum() and 0 < len(stream) <= 64):
        raise ValueError("a version-2 record needs a stream (letters and digits)")
    if not (isinstance(seq, int) and isinstance(floor, int) and 0 < floor <= seq):
        raise ValueError("a version-2 record needs 0 < floor <= seq")
    return Sequenced(stream, seq, floor)


@dataclass(frozen=True)
class Ack:
    upto: int  # the collector holds every record of the stream up to this seq

    def payload(self, at: str) -> str:
        return json.dumps({"v": ACK_VERSION, "upto": self.upto, "at": at})

    @classmethod
    def parse(cls, payload: bytes) -> Ack:
        body = json.loads(payload)
        if not (isinstance(body, dict) and isinstance(body.get("upto"), int) and body["upto"] >= 0):
            raise ValueError("an ack needs upto >= 0")
        return cls(body["upto"])


@dataclass(frozen=True)
class Resend:
    ranges: tuple[tuple[int, int], ...]  # inclusive, ascending

    def payload(self, at: str) -> str:
        return json.dumps({"v": ACK_VERSION, "ranges": [list(r) for r in self.ranges], "at": at})

    @classmethod
    def parse(cls, payload: bytes) -> Resend:
        body = json.loads(payload)
        ranges = body.get("ranges") if isinstance(body, dict) else None
        if not (isinstance(ranges, list) and all(isinstance(r, list) and len(r) == 2 and all(isinstance(x, int) for x in r)
                                                 and 0 < r[0] <= r[1] for r in ranges)):
            raise ValueError("a resend request needs ranges [[first, last], ...] with 0 < first <= last")
        return cls(tuple((a, b) for a, b in ranges))

    def seqs(self, limit: int = MAX_ASKED) -> list[int]:
        """The seqs asked for, oldest first, at most `limit`."""
        out: set[int] = set()
        for a, b in sorted(self.ranges):
            for seq in range(a, b + 1):
                if len(out) >= limit:
                    return sorted(out)
                out.add(seq)
        return sorted(out)


def holes(upto: int, until: int, have: Iterable[int], limit: int = MAX_ASKED) -> tuple[tuple[int, int], ...]:
    """The ranges in (upto, until) that `have` (ascending) lacks, at most `limit` seqs in all."""
    ranges: list[tuple[int, int]] = []
    nxt, left = upto + 1, limit
    for seq in (*have, until):
        if seq <= upto:
            continue
        if seq > until:
            seq = until
        if seq > nxt and left > 0:
            last = min(seq - 1, nxt + left - 1)
            ranges.append((nxt, last))
            left -= last - nxt + 1
        nxt = max(nxt, seq + 1)
        if seq >= until:
            break
    return tuple(ranges)


def spans(ranges: tuple[tuple[int, int], ...]) -> str:
    """Ranges as a person reads them: '3-4, 9'."""
    return ", ".join(f"{a}-{b}" if b > a else str(a) for a, b in ranges)
