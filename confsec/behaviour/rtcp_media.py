"""A participant's RTCP: what its offers and answers say about it, and when it reports.

Participants speak RTCP as real stacks do (issue 17): every stream reports in SRTCP while it
lives and says BYE when it leaves, so that the service's handling of RTCP is exercised in every
scenario, and the R3 RTCP checks (`rtcp_checks`) have traffic both ways to judge.

* An offer (`offer_attributes`) asks for rtcp-mux (RFC 5761) and names the leg's own RTCP port
  in `a=rtcp` (RFC 3605) for a service that declines it. A DTLS-SRTP leg asks for rtcp-mux
  only: without it RTCP would need a DTLS association of its own (RFC 5764 4.1), which the
  participants do not run, so such a leg sends no RTCP (and says so through `reports`).
* An answer (`take_answer`) decides: rtcp-mux, or the answer's `a=rtcp` port, or the RTP
  port + 1 (RFC 3550 11).
* As the answerer of a service's offer (dial-out), `answer_attributes` mirrors it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from confsec.media.rtcp_channel import RtcpChannel

if TYPE_CHECKING:
    from confsec.codec.sdp import MediaDescription
    from confsec.media.endpoint import MediaLeg

__all__ = [
    "answer_attributes",
    "bye_all",
    "offer_attributes",
    "rekey_attributes",
    "take_answer",
]

Attr = tuple[str, str | None]


async def offer_attributes(
    leg: MediaLeg, cname: str, *, own_port: bool = True, mux: bool = True
) -> list[Attr]:
    """Open the leg's RTCP channel; `a=rtcp-mux` (unless `mux` is False), and `a=rtcp` where
    it has its own port."""
    channel = await RtcpChannel.open(leg, cname, own_socket=own_port)
    attrs: list[Attr] = [("rtcp-mux", None)] if mux else []
    if channel.port is not None:
        attrs.append(("rtcp", str(channel.port)))
    return attrs  # DTLS-SRTP: muxed or nothing


def take_answer(leg: MediaLeg, m: MediaDescription, host: str, ssrc: int) -> None:
    """Apply what the answer says of RTCP to the leg's channel and start reporting."""
    channel = leg.rtcp_channel
    if channel is None:
        return
    if m.rtcp_mux:
        channel.use_mux()
    elif channel.socket is not None:
        channel.use_port(m.rtcp_address(host))
    crypto = next(iter(m.crypto), None) if m.crypto else None
    channel.allow_unencrypted(crypto is not None and "UNENCRYPTED_SRTCP" in crypto.session_params)
    channel.start(ssrc)


async def answer_attributes(
    leg: MediaLeg, m: MediaDescription, host: str, cname: str, ssrc: int
) -> list[Attr]:
    """The answerer's side: rtcp-mux if the offer asks for it, else the leg's own RTCP port."""
    channel = await RtcpChannel.open(leg, cname)
    if m.rtcp_mux:
        channel.use_mux()
        attrs: list[Attr] = [("rtcp-mux", None)]
    else:
        channel.use_port(m.rtcp_address(host))
        attrs = [("rtcp", str(channel.port))]
    channel.start(ssrc)
    return attrs


def rekey_attributes(leg: MediaLeg, m: MediaDescription) -> list[Attr]:
    """What an answer to a re-offer says of RTCP: the same as before (RFC 5761 5.1.1)."""
    channel = leg.rtcp_channel
    if channel is None:
        return []
    if m.rtcp_mux and channel.muxed:
        return [("rtcp-mux", None)]
    return [("rtcp", str(channel.port))] if channel.port is not None else []


def bye_all(legs: dict[str, MediaLeg]) -> int:
    """An SRTCP BYE on every leg that reports (RFC 3550 6.6); how many were sent."""
    sent = 0
    for leg in legs.values():
        if leg.rtcp_channel is not None and not leg.closed:
            sent += leg.rtcp_channel.bye()
    return sent
