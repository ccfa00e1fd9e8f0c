"""Which requests belong to a call (RFC 3261 §9.2, §12.2.2): only the caller's own CANCEL, ACK
and in-dialog requests may change it. They come from the address the INVITE came from and carry
the caller's From tag, plus our To tag (a dialog) or the INVITE's branch and CSeq (a CANCEL).
Another allowed source that learnt the Call-ID is not at the caller's address; a guess at the
tags or the branch does not match them."""

from __future__ import annotations

from .message import SipMessage, tag_of

Address = tuple[str, int]


def branch_of(message: SipMessage) -> str | None:
    """The branch parameter of the top Via (the client transaction's id)."""
    via = message.header("via") or ""
    for param in via.split(",", 1)[0].split(";")[1:]:
        key, _, value = param.strip().partition("=")
        if key.lower() == "branch":
            return value
    return None


def _from_caller(caller_tag: str | None, caller: Address, request: SipMessage, addr: Address) -> bool:
    tag = tag_of(request.header("from") or "")
    return addr[0] == caller[0] and caller_tag is not None and tag == caller_tag


def cancels(invite: SipMessage, cancel: SipMessage, caller: Address, addr: Address) -> bool:
    """A CANCEL of this INVITE: from the caller, with the INVITE's branch and CSeq number (§9.2)."""
    branch = branch_of(invite)
    return (
        _from_caller(tag_of(invite.header("from") or ""), caller, cancel, addr)
        and branch is not None
        and branch_of(cancel) == branch
        and cancel.cseq[0] == invite.cseq[0]
    )


def in_dialog(
    invite: SipMessage, local_tag: str, request: SipMessage, caller: Address, addr: Address
) -> bool:
    """A request of the call's dialog (BYE, ACK, …): from the caller, addressed to our To tag."""
    caller_tag = tag_of(invite.header("from") or "")
    return _from_caller(caller_tag, caller, request, addr) and tag_of(request.header("to") or "") == local_tag


def acknowledges(final: SipMessage, ack: SipMessage, caller: Address, addr: Address) -> bool:
    """An ACK of our final answer to an INVITE: the answer's From tag and To tag, from the caller."""
    local_tag = tag_of(final.header("to") or "")
    return (
        _from_caller(tag_of(final.header("from") or ""), caller, ack, addr)
        and local_tag is not None
        and tag_of(ack.header("to") or "") == local_tag
    )
