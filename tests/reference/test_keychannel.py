"""The focus -> mixer key channel (confsec/reference/keychannel.py): what it carries and refuses.

The O1 scenarios and `confsec analyze` pin that the channel is protected; here its messages are:
every control type comes back as it was sent, and a type name read off the wire that is not one
of them is refused with a clear error instead of being looked up as code, while the mixer's end
goes on serving the connection.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass

import pytest

from confsec.errors import RemoteProtocolError
from confsec.reference.keychannel import WIRE_TYPES, KeyChannel, UnknownWireType, decode, encode
from confsec.reference.mixer import Mixer
from confsec.reference.mixer_control import (
    COMMON_MEDIA,
    DtlsSetup,
    LegSetup,
    SrtpKeys,
    StreamSetup,
)

SUITE = "AES_CM_128_HMAC_SHA1_80"


def _setup() -> LegSetup:
    rx = SrtpKeys(SUITE, b"r" * 16, b"s" * 14)
    tx = SrtpKeys(SUITE, b"t" * 16, b"u" * 14)
    group = SrtpKeys(SUITE, b"g" * 16, b"h" * 14)
    return LegSetup(
        "conf-1",
        "conf-1/alice/ab12",
        (
            StreamSetup("audio", 0, ("127.0.0.1", 40000), rx, tx, 0x1234, 2),
            StreamSetup(COMMON_MEDIA, 0, ("127.0.0.1", 40002), None, group, 0x5678, 2),
        ),
    )


def test_the_registry_is_the_control_types() -> None:
    assert WIRE_TYPES == {
        "SrtpKeys": SrtpKeys,
        "StreamSetup": StreamSetup,
        "LegSetup": LegSetup,
        "DtlsSetup": DtlsSetup,  # dtls-srtp mode: the mixer's identity and peer per stream
    }


def test_a_leg_setup_comes_back_as_it_was_sent() -> None:
    setup = _setup()
    line = json.dumps(encode(setup))
    assert decode(json.loads(line)) == setup


@pytest.mark.parametrize("name", ["Mixer", "KeyChannelServer", "log", "__class__", 7, None])
def test_a_type_that_is_not_a_control_type_is_refused(name: object) -> None:
    with pytest.raises(UnknownWireType, match=r"unknown type .* on the key channel"):
        decode({"__dc__": name, "suite": SUITE})


def test_a_control_type_with_other_fields_is_refused() -> None:
    with pytest.raises(RemoteProtocolError, match="SrtpKeys on the key channel"):
        decode({"__dc__": "SrtpKeys", "suite": SUITE, "password": "x"})


def test_only_control_types_are_sent() -> None:
    @dataclass(frozen=True)
    class SrtpKeysLookalike:
        suite: str

    with pytest.raises(TypeError, match="not a type of the key channel"):
        encode(SrtpKeysLookalike(SUITE))


def test_the_mixer_end_refuses_an_unknown_type_and_keeps_serving(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main() -> dict[str, object]:
        mixer = Mixer()
        channel = await KeyChannel.start(
            mixer, host="127.0.0.1", server_ctx=None, client_ctx=None, server_hostname="x"
        )
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", channel.port)
            bad = {"op": "install", "setup": {"__dc__": "KeyChannelServer", "mixer": None}}
            allocate = {"op": "allocate", "id": 1, "conference_id": "c", "leg_id": "l"}
            for message in (bad, {**allocate, "media": ["audio"]}):
                writer.write(json.dumps(message).encode() + b"\n")
            await writer.drain()
            reply = json.loads(await asyncio.wait_for(reader.readline(), 5))
            writer.close()
            return reply
        finally:
            await channel.close()
            mixer.close()

    with caplog.at_level(logging.ERROR, logger="confsec.reference.keychannel"):
        reply = asyncio.run(main())
    assert reply["id"] == 1 and "audio" in reply["ports"]  # type: ignore[operator]
    refused = [r for r in caplog.records if r.exc_info and r.exc_info[0] is UnknownWireType]
    assert refused and "install failed" in refused[0].getMessage()
