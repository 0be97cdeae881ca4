"""Feature modules, one socket blueprint each; the factory registers them in this order."""
from __future__ import annotations

from realtime.features.chat import chat
from realtime.features.game import game
from realtime.features.notifications import notifications
from realtime.features.party import party
from realtime.features.presence import presence
from realtime.features.rooms import rooms
from realtime.sockets.blueprint import SocketBlueprint
from realtime.sockets.connect import session

BLUEPRINTS: list[SocketBlueprint] = [session, chat, presence, party, notifications, game, rooms]
