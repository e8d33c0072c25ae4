"""The receive queue the TCP and UDP transports share (transports/tcp.py, Inbox): a bounded
deque that hands an envelope straight to a parked receiver, and loses nothing to a receiver
that was cancelled while it waited."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from transports.base import TransportClosed, TransportStatistics
from transports.codec import KIND_ONEWAY, Envelope
from transports.tcp import Inbox, ScheduleBudget
from delos_ref.sim.workload_rpc import Echo


def env(n: int) -> Envelope:
    return Envelope("peer", "me", KIND_ONEWAY, 0, Echo(n, False))


def inbox(capacity: int = 4) -> tuple[Inbox, TransportStatistics]:
    stats = TransportStatistics()
    return Inbox("me", capacity, stats, ScheduleBudget()), stats


async def test_a_parked_receiver_gets_the_envelope_and_fifo_order_holds():
    box, stats = inbox()
    got = []

    async def receiver():
        for _ in range(3):
            got.append((await box.receive()).payload.nonce)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(receiver)
        await trio.testing.wait_all_tasks_blocked()
        box.deliver(env(0))  # straight to the parked receiver
        box.deliver(env(1))  # queued
        box.deliver(env(2))
    assert got == [0, 1, 2] and stats.received == 3 and stats.dropped == 0


async def test_a_cancelled_receiver_takes_nothing():
    box, _ = inbox()
    with trio.move_on_after(0.01):
        await box.receive()
    box.deliver(env(7))
    assert (await box.receive()).payload.nonce == 7


async def test_a_full_queue_drops_and_counts():
    box, stats = inbox(capacity=2)
    for i in range(3):
        box.deliver(env(i))
    assert stats.received == 2 and stats.dropped == 1 and box.full_drops == 1
    assert [(await box.receive()).payload.nonce for _ in range(2)] == [0, 1]


async def test_close_wakes_a_parked_receiver():
    box, _ = inbox()

    async def close_soon():
        await trio.testing.wait_all_tasks_blocked()
        box.close()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(close_soon)
        with pytest.raises(TransportClosed):
            await box.receive()
    box.deliver(env(1))  # after close: ignored, never raises
    with pytest.raises(TransportClosed):
        await box.receive()
