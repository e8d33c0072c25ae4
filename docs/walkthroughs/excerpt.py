"""Print a readable excerpt of a simulator trace (the NDJSON of ``delos-ref trace record``).

One line per event: the virtual time, the node, ``role/event`` and the event's fields, with
the chains that the MetaStore's events carry decoded (``[0,28) native boot seq=s1 | [28,..)
native x2.0 seq=s3``) instead of their base64 bytes. Network events are left out unless asked
for. The walkthroughs in this folder quote what it prints; run it on a trace you recorded::

    delos-ref trace record --workload log --seed 0 --faults none --out log-0.ndjson
    python docs/walkthroughs/excerpt.py log-0.ndjson --events Append,Store,Stored,Commit,AppendAck --first 8

Filters (all optional, combined with "and"): ``--events`` (event names, or ``role/event``),
``--msgs`` (message kinds: the network's deliveries of those messages), ``--nodes`` (events of
those nodes, messages between two of them), ``--where key=value`` (a field's value as printed, repeatable), ``--since`` and
``--until`` (virtual seconds), ``--first N`` (stop after N lines).
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from typing import Any

from delos_ref.virtuallog.chain import decode_chain
from transports.codec import decode_value


def describe_chain(raw: bytes) -> str:
    """A chain's segments, one ``[start,stop) kind loglet-id seq=sequencer`` each."""
    parts = []
    for seg in decode_chain(raw).segments:
        stop = ".." if seg.stop is None else str(seg.stop)
        cfg = decode_value(seg.params)
        name = getattr(cfg, "loglet_id", "?")
        seq = getattr(cfg, "sequencer", None)
        parts.append(f"[{seg.start},{stop}) {seg.kind} {name}" + (f" seq={seq}" if seq else ""))
    return " | ".join(parts)


def show(value: Any) -> str:
    """A field's value as one short token; encoded chains are decoded."""
    if isinstance(value, dict) and set(value) == {"b64"}:
        raw = base64.b64decode(value["b64"])
        try:
            return "chain<" + describe_chain(raw) + ">"
        except Exception:
            return f"<{len(raw)} bytes>"
    if isinstance(value, dict) and "data" in value and "writer" in value:
        return f"{value['writer']}#{value['seq']}:{show(value['data'])}"
    if isinstance(value, list):
        return "[" + ",".join(show(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{show(v)}" for k, v in value.items()) + "}"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def line(event: dict[str, Any]) -> str:
    fields = " ".join(f"{k}={show(v)}" for k, v in sorted(event.items()) if k not in ("t", "node", "role", "event"))
    return f"t={event['t']:.4f} {event['node']:>6} {event['role']}/{event['event']} {fields}".rstrip()


def matches(event: dict[str, Any], args: argparse.Namespace) -> bool:
    named = event["event"] in args.events or f"{event['role']}/{event['event']}" in args.events
    if event["role"] == "net":
        if not (named or (event["event"] == "deliver" and event.get("msg") in args.msgs)):
            return False
    elif args.events and not named:
        return False
    if args.nodes and event["node"] not in args.nodes and not {event.get("src"), event.get("dst")} <= args.nodes:
        return False  # a message matches when both its ends are among the nodes
    if not args.since <= event["t"] <= args.until:
        return False
    return all(k in event and show(event[k]) == v for k, v in args.where)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("trace", help="an NDJSON trace from delos-ref trace record")
    p.add_argument("--events", type=lambda s: set(s.split(",")), default=set())
    p.add_argument("--msgs", type=lambda s: set(s.split(",")), default=set())
    p.add_argument("--nodes", type=lambda s: set(s.split(",")), default=set())
    p.add_argument("--where", action="append", default=[], type=lambda s: tuple(s.split("=", 1)))
    p.add_argument("--since", type=float, default=0.0)
    p.add_argument("--until", type=float, default=float("inf"))
    p.add_argument("--first", type=int, default=0)
    args = p.parse_args(argv)
    try:
        lines = open(args.trace).read().splitlines()
    except OSError as e:
        print(f"error: {args.trace}: {e.strerror}", file=sys.stderr)
        return 2
    shown = 0
    for number, text in enumerate(lines, 1):
        try:
            event = json.loads(text)
            event["t"], event["node"], event["role"], event["event"]
        except (ValueError, TypeError, KeyError):
            print(f"error: {args.trace}:{number}: not a trace event (want the NDJSON of delos-ref trace record)", file=sys.stderr)
            return 2
        if matches(event, args):
            print(line(event))
            shown += 1
            if shown == args.first:
                break
    return 0


if __name__ == "__main__":
    sys.exit(main())
