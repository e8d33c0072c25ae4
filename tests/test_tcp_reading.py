"""Who reads a TCP transport's connections (transports/tcp.py, "Reading"): the task waiting in
``receive`` reads them itself, and a background reader takes over whenever no task waits.

These pin what that hand-over must never cost: a message nobody is waiting for is still read
(a peer is never blocked by us not receiving), a message to ourselves wakes a receiver that
is already waiting on the sockets, several receivers share what arrives without loss or
duplication, and a receiver cancelled while it reads leaves the next message to the next
receiver. Real sockets on loopback, real time; no assertion is about how long anything took.
"""

from __future__ import annotations

import trio
import trio.testing

from transports.base import PeerAddress
from transports.codec import KIND_ONEWAY, Envelope, FrameCodec, message
from transports.tcp import open_tcp_transport

TEST_TIMEOUT_S = 10
LOCALHOST = PeerAddress("127.0.0.1", 0)
CODEC = FrameCodec(secret=b"tcp reading test secret")


@message("test.tcp_reading.note")
class Note:
    seq: int


def note(src: str, dst: str, seq: int) -> Envelope:
    return Envelope(src, dst, KIND_ONEWAY, 0, Note(seq))


def pair():
    """A listening server ``s`` and a client ``c`` that dials it."""
    return open_tcp_transport("s", bind=LOCALHOST, peers={}, codec=CODEC)


async def test_messages_nobody_waits_for_are_still_read_off_the_socket():
    """With no receiver, the background reader reads: the peer's frames reach our inbox (the
    received count) before anyone calls receive, and then come out in order."""
    with trio.fail_after(TEST_TIMEOUT_S):
        async with pair() as s:
            async with open_tcp_transport("c", bind=None, peers={"s": s.address}, codec=CODEC) as c:
                for seq in range(50):
                    await c.send(note("c", "s", seq))
                while s.statistics().received < 50:
                    await trio.sleep(0.005)
                assert [(await s.receive()).payload.seq for _ in range(50)] == list(range(50))


async def test_a_message_to_ourselves_wakes_a_receiver_already_waiting():
    with trio.fail_after(TEST_TIMEOUT_S):
        async with pair() as s:
            got: list[int] = []

            async def receive_one() -> None:
                got.append((await s.receive()).payload.seq)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(receive_one)
                await trio.testing.wait_all_tasks_blocked()  # it waits on the sockets now
                await s.send(note("s", "s", 7))
            assert got == [7]


async def test_receivers_waiting_together_share_the_messages_without_loss_or_duplicates():
    with trio.fail_after(TEST_TIMEOUT_S):
        async with pair() as s:
            async with open_tcp_transport("c", bind=None, peers={"s": s.address}, codec=CODEC) as c:
                got: list[tuple[int, int]] = []

                async def receive_some(who: int, count: int) -> None:
                    for _ in range(count):
                        got.append((who, (await s.receive()).payload.seq))

                async with trio.open_nursery() as nursery:
                    for who in range(3):
                        nursery.start_soon(receive_some, who, 20)
                    await trio.testing.wait_all_tasks_blocked()
                    for seq in range(60):
                        await c.send(note("c", "s", seq))
                assert sorted(seq for _, seq in got) == list(range(60))
                for who in range(3):  # each receiver sees the messages in the order sent
                    mine = [seq for w, seq in got if w == who]
                    assert mine == sorted(mine)


async def test_a_receiver_cancelled_while_waiting_leaves_the_next_message_to_the_next_one():
    with trio.fail_after(TEST_TIMEOUT_S):
        async with pair() as s:
            async with open_tcp_transport("c", bind=None, peers={"s": s.address}, codec=CODEC) as c:
                with trio.move_on_after(0.05) as scope:
                    await s.receive()  # waits on the sockets; cancelled with nothing arrived
                assert scope.cancelled_caught
                await c.send(note("c", "s", 1))
                assert (await s.receive()).payload.seq == 1
                # And once the reading receiver is gone, the background reader reads again.
                await c.send(note("c", "s", 2))
                while s.statistics().received < 2:
                    await trio.sleep(0.005)
                assert (await s.receive()).payload.seq == 2


def test_readable_set_reports_exactly_the_readable_members_with_epoll_or_a_selector():
    import select
    import socket

    from transports.tcp import ReadableSet

    for use_epoll in sorted({False, hasattr(select, "epoll")}):
        readable = ReadableSet(use_epoll=use_epoll)
        pairs = [socket.socketpair() for _ in range(3)]
        items = [object() for _ in pairs]  # members are told apart by identity
        try:
            for (_, inner), item in zip(pairs, items):
                readable.add(inner, item)
            assert readable.ready() == []
            pairs[1][0].send(b"x")
            assert readable.ready() == [items[1]]
            readable.discard(pairs[1][1], items[0])  # not its item: it stays a member
            assert readable.ready() == [items[1]]
            readable.discard(pairs[1][1], items[1])
            pairs[2][0].close()  # EOF is readable too
            assert readable.ready() == [items[2]]
        finally:
            readable.close()
            for a, b in pairs:
                a.close()
                b.close()
