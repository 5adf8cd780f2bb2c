"""Which transaction a SIP message belongs to (RFC 3261 §17.1.3 and §17.2.3), sans-IO.

The keys are computed from the message alone, so the transaction layer can match a response or
a retransmitted request to its machine in one dictionary lookup, and a test can check the rules
on parsed messages.
"""

from __future__ import annotations

from confsec.codec.sip import Request, Response, parse_via

MAGIC_COOKIE = "z9hG4bK"
"""The branch prefix of RFC 3261 transactions (§8.1.1.7); without it a peer follows RFC 2543."""


def _cseq_method(message: Request | Response) -> str:
    try:
        return message.cseq[1].upper()
    except Exception:
        return ""


def client_key(message: Request | Response) -> tuple[str, str]:
    """Key of a client transaction (§17.1.3): top Via branch + CSeq method.

    A response carries the branch we sent in the top Via; the CSeq method tells the INVITE
    transaction from the CANCEL that shares its branch.
    """
    branch = message.branch or ""
    method = _cseq_method(message)
    if method == "ACK":
        method = "INVITE"
    return (branch, method)


def server_key(request: Request) -> tuple[str, ...]:
    """Key of a server transaction (§17.2.3).

    With the magic cookie: branch + sent-by of the top Via + method, ACK counting as INVITE.
    Without it (RFC 2543 peers) fall back to the fields §17.2.3 lists so that such peers still
    get their retransmissions absorbed.
    """
    method = request.method.upper()
    if method == "ACK":
        method = "INVITE"
    top_value = request.headers.get("Via")
    top = parse_via(top_value) if top_value is not None else None  # parsed once: hot path
    sent_by = f"{top.host}:{top.port}" if top is not None else ""
    branch = (top.branch if top is not None else None) or ""
    if branch.startswith(MAGIC_COOKIE):
        return (branch, sent_by, method)
    to_tag = ""
    from_tag = ""
    try:
        to_tag = request.to.tag or ""
        from_tag = request.from_.tag or ""
    except Exception:
        pass
    cseq = request.cseq[0] if request.headers.get("CSeq") else 0
    return (
        "rfc2543",
        request.uri,
        to_tag,
        from_tag,
        request.call_id or "",
        str(cseq),
        sent_by,
        method,
    )
