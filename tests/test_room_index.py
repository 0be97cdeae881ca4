"""The per-socket room index of the fan-out managers behaves exactly as python-socketio's scans."""
from __future__ import annotations

import itertools
import random
from types import SimpleNamespace

import pytest
import socketio

from realtime.fanout.manager import LocalFanout
from realtime.fanout.room_index import SidSet


def both() -> tuple[socketio.Manager, LocalFanout]:
    plain, ours = socketio.Manager(), LocalFanout(None)
    for manager in (plain, ours):
        ids = itertools.count()
        eio = SimpleNamespace(generate_id=lambda ids=ids: f"s{next(ids)}")
        manager.set_server(SimpleNamespace(logger=None, eio=eio, packet_class=socketio.packet.Packet))
        manager.initialize()
    return plain, ours


def state(manager: socketio.Manager) -> tuple[dict, dict, dict]:
    rooms = {ns: {room: dict(members) for room, members in by_room.items()} for ns, by_room in manager.rooms.items()}
    def pending(by_namespace: dict) -> dict[str, list[str]]:
        return {ns: list(sids) for ns, sids in by_namespace.items()}

    return rooms, pending(manager.pending_connect), pending(manager.pending_disconnect)


@pytest.mark.parametrize("seed", range(8))
def test_random_connects_joins_leaves_and_disconnects_match_python_socketio(seed: int) -> None:
    plain, ours = both()
    rng = random.Random(seed)
    sids: list[str] = []
    for step in range(400):
        action = rng.choice(["connect", "connect", "enter", "enter", "leave", "disconnect", "close", "pending"])
        if action == "connect" or not sids:
            connected = {m.connect(f"e{step}", "/") for m in (plain, ours)}
            assert len(connected) == 1
            sids.append(connected.pop())
            continue
        sid = rng.choice(sids)
        room = f"group:{rng.randrange(6)}"
        for manager in (plain, ours):
            if action == "enter":
                manager.basic_enter_room(sid, "/", room)
            elif action == "leave":
                manager.basic_leave_room(sid, "/", room)
            elif action == "close":
                manager.basic_close_room(room, "/")
            elif action == "pending":
                # As python-socketio's pre_disconnect, only for a socket not already going away.
                if sid not in manager.pending_disconnect.get("/", ()):
                    manager.pending_disconnect.setdefault("/", []).append(sid)
            else:
                manager.basic_disconnect(sid, "/")
        if action == "disconnect":
            sids.remove(sid)
        assert sorted(plain.get_rooms(sid, "/")) == sorted(ours.get_rooms(sid, "/"))
        assert state(plain) == state(ours)


def test_disconnect_reads_only_the_sockets_own_rooms() -> None:
    _, ours = both()
    sids = [ours.connect(f"e{i}", "/") for i in range(300)]
    ours.basic_enter_room(sids[0], "/", "group:a")

    class Counting(dict):
        reads = 0

        def items(self):  # noqa: ANN201
            Counting.reads += 1
            return super().items()

    ours.rooms["/"] = Counting(ours.rooms["/"])
    ours.basic_disconnect(sids[0], "/")

    assert Counting.reads == 0
    assert "group:a" not in ours.rooms["/"] and sids[0] not in ours.rooms["/"]
    assert ours.rooms_of_sid.get(("/", sids[0])) is None


def test_pending_sockets_are_looked_up_and_removed_without_scanning() -> None:
    """A connect storm or a mass disconnect keeps thousands of sockets pending: each ``in`` and ``remove``
    of python-socketio's manager must not walk all of them."""
    _, ours = both()
    sids = [ours.pre_connect(f"e{i}", "/") for i in range(2000)]
    for sid in sids[:1000]:
        ours.pre_disconnect(ours.connect(sid, "/"), "/")

    assert isinstance(ours.pending_connect["/"], SidSet) and isinstance(ours.pending_disconnect["/"], SidSet)
    assert len(ours.pending_connect["/"]) == 1000 and len(ours.pending_disconnect["/"]) == 1000
    assert not ours.is_connected(sids[0], "/") and not ours.is_connected(sids[1999], "/")
    for sid in sids:
        ours.basic_disconnect(sid, "/")
    assert "/" not in ours.pending_connect and "/" not in ours.pending_disconnect
