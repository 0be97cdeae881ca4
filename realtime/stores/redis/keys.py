"""Every Redis key this server writes, in one place, under ``KEY_PREFIX``."""
from __future__ import annotations


class Keys:
    """Key builders. Scripts receive the keys known up front as KEYS; the keys they find while running (a
    member's sockets, a socket's rooms) they name with ``lua/keys_fn.lua``, which mirrors these builders."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    # Sessions and profiles (written by the login service; see README).
    def session(self, session_id: str) -> str:
        return f"{self.prefix}session:{session_id}"

    def user(self, user_id: str) -> str:
        return f"{self.prefix}user:{user_id}"

    # Live sockets: liveness, owner, rooms.
    @property
    def sockets(self) -> str:
        """ZSET sid -> expiry (unix seconds); the reaper pops expired members."""
        return f"{self.prefix}sockets"

    @property
    def socket_prefix(self) -> str:
        """HASH ``{prefix}socket:{sid}`` with ``user`` and ``session``."""
        return f"{self.prefix}socket:"

    @property
    def socket_rooms_prefix(self) -> str:
        """SET ``{prefix}socket-rooms:{sid}`` of the rooms the socket is in."""
        return f"{self.prefix}socket-rooms:"

    @property
    def room_prefix(self) -> str:
        """SET ``{prefix}room:{room}`` of the sids in the room."""
        return f"{self.prefix}room:"

    def room_users(self, room: str) -> str:
        """SET of the user ids with a socket in ``room``."""
        return f"{self.prefix}room-users:{room}"

    def socket_rooms(self, sid: str) -> str:
        return f"{self.socket_rooms_prefix}{sid}"

    def room(self, room: str) -> str:
        return f"{self.room_prefix}{room}"

    def room_complete(self, room: str) -> str:
        """STRING set (with a TTL) while every member of the chat room ``room`` was found with a socket in it;
        deleted when a user's last socket leaves it or a member joins (lua/chat_append.lua)."""
        return f"{self.prefix}room-complete:{room}"

    def room_user(self, room: str, user_id: str) -> str:
        """SET of the sids of ``user_id`` in ``room`` (the user counts in ``room_users`` while it is not empty)."""
        return f"{self.prefix}room-user:{room}:{user_id}"

    @property
    def recent_connects(self) -> str:
        """ZSET sid -> first connect time of the sockets that connected in the last minute."""
        return f"{self.prefix}recent-connects"

    # Presence.
    @property
    def user_sockets_prefix(self) -> str:
        """ZSET ``{prefix}user-sockets:{user}`` sid -> expiry."""
        return f"{self.prefix}user-sockets:"

    @property
    def presence_prefix(self) -> str:
        """HASH ``{prefix}presence:{user}`` with ``status`` and ``lastSeen``."""
        return f"{self.prefix}presence:"

    def user_sockets(self, user_id: str) -> str:
        return f"{self.user_sockets_prefix}{user_id}"

    def presence(self, user_id: str) -> str:
        return f"{self.presence_prefix}{user_id}"

    # Notifications.
    @property
    def notifications_prefix(self) -> str:
        """LIST ``{prefix}notifications:{user}`` of JSON, newest first, capped."""
        return f"{self.prefix}notifications:"

    @property
    def unread_prefix(self) -> str:
        """SET ``{prefix}notifications-unread:{user}`` of unread ids."""
        return f"{self.prefix}notifications-unread:"

    def notifications(self, user_id: str) -> str:
        return f"{self.notifications_prefix}{user_id}"

    def unread(self, user_id: str) -> str:
        return f"{self.unread_prefix}{user_id}"

    # Chat.
    def chat_stream(self, room_id: str) -> str:
        return f"{self.prefix}chat:{room_id}"

    def chat_dedup(self, room_id: str, user_id: str, client_id: str) -> str:
        return f"{self.prefix}chat-dedup:{room_id}:{user_id}:{client_id}"

    def group_members(self, room_id: str) -> str:
        return f"{self.prefix}group-members:{room_id}"

    @property
    def chat_offline_jobs(self) -> str:
        """STREAM of offline-member jobs of chat messages (capped), read by the group ``offline-notify``."""
        return f"{self.prefix}chat-offline-jobs"

    # Games.
    def game(self, game_id: str) -> str:
        return f"{self.prefix}game:{game_id}"

    def game_moves(self, game_id: str) -> str:
        """LIST of the last moves, each the JSON text it was stored as."""
        return f"{self.prefix}game-moves:{game_id}"

    # Connection-state recovery.
    def recovery_stream(self, namespace: str) -> str:
        """STREAM of broadcast packets with offsets, for one Socket.IO namespace."""
        return f"{self.prefix}recovery-stream:{namespace}"

    def recovery_last(self, namespace: str) -> str:
        """STRING: the offset logged last in :meth:`recovery_stream` (``lua/recovery_fn.lua``), kept by every
        append: reading it costs Redis less than reading the stream's last entry."""
        return f"{self.prefix}recovery-last:{namespace}"

    def recovery_session(self, pid: str) -> str:
        """JSON record of a disconnected socket, kept for RECOVERY_WINDOW."""
        return f"{self.prefix}recovery:{pid}"

    # Cluster control channel.
    @property
    def control_channel(self) -> str:
        return f"{self.prefix}control"

    # Readiness.
    @property
    def readiness_probe(self) -> str:
        """STRING written (with a 60 s expiry) by ``/readyz``: a write fails when Redis refuses writes."""
        return f"{self.prefix}readiness-probe"
