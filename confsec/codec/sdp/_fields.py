"""The structured values of the `o=`, `c=` and `t=` lines (RFC 8866 §5.2, §5.7, §5.9)."""

from __future__ import annotations

from dataclasses import dataclass, replace

__all__ = ["Connection", "Origin", "Timing"]


@dataclass(frozen=True)
class Origin:
    """The `o=` line: `<username> <sess-id> <sess-version> <nettype> <addrtype> <address>`."""

    username: str
    session_id: int
    session_version: int
    nettype: str = "IN"
    addrtype: str = "IP4"
    address: str = "127.0.0.1"

    def __str__(self) -> str:
        return (
            f"{self.username} {self.session_id} {self.session_version} "
            f"{self.nettype} {self.addrtype} {self.address}"
        )

    def bumped(self) -> Origin:
        """The origin of the next version of the session (RFC 3264 §8: +1 on every change)."""
        return replace(self, session_version=self.session_version + 1)


@dataclass(frozen=True)
class Connection:
    """A `c=` line: `<nettype> <addrtype> <connection-address>`."""

    nettype: str
    addrtype: str
    address: str
    """As written, including any multicast `/ttl/count` suffix."""

    def __str__(self) -> str:
        return f"{self.nettype} {self.addrtype} {self.address}"

    @property
    def host(self) -> str:
        """The address without a multicast `/ttl` or `/count` suffix."""
        return self.address.split("/", 1)[0]


@dataclass(frozen=True)
class Timing:
    """A `t=` line with the `r=` lines that follow it (kept verbatim: they allow typed times)."""

    start: int = 0
    stop: int = 0
    repeats: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "repeats", tuple(self.repeats))
