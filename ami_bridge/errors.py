"""Typed transport errors of the AMI bridge.

Everything the bridge can get wrong on the wire is an :class:`AMIError`. Domain errors live in
``dialer.domain``; HTTP mapping lives only in ``api/``.

The sans-IO parser (:mod:`ami_bridge.protocol`) never *raises* the :class:`AMIProtocolError`
subclasses on bad input: it *returns* them as items of ``AMIParser.feed()`` so that the
connection manager can log them and carry on (the connection recovers at the next message
boundary). They are still exceptions, so a caller that prefers to fail hard can ``raise`` one.
"""

from __future__ import annotations


class AMIError(Exception):
    """Base class of every AMI bridge transport error."""


class AMIProtocolError(AMIError):
    """The peer sent bytes that are not valid AMI.

    ``sample`` holds at most :data:`SAMPLE_LIMIT` bytes of the offending input, for logs.
    Never log it unmasked at INFO level: it may contain phone numbers.
    """

    SAMPLE_LIMIT = 80

    def __init__(self, message: str, *, sample: bytes = b"") -> None:
        super().__init__(message)
        self.sample = sample[: self.SAMPLE_LIMIT]


class MessageTooLarge(AMIProtocolError):
    """A message (or the banner) grew past the parser's ``max_message_size``.

    The parser discards it and resynchronises at the next empty line. ``size`` is the number
    of bytes that were discarded when the error was reported (at least ``limit``).
    """

    def __init__(self, size: int, limit: int, *, sample: bytes = b"") -> None:
        super().__init__(
            f"AMI message larger than {limit} bytes ({size} bytes seen); discarded",
            sample=sample,
        )
        self.size = size
        self.limit = limit


class MalformedLine(AMIProtocolError):
    """A line inside a message has no ``Key: Value`` colon. The line is dropped."""


class MalformedMessage(AMIProtocolError):
    """A block between empty lines holds no ``Key: Value`` header at all. It is dropped."""


class InvalidEncoding(AMIProtocolError):
    """A message was not valid UTF-8. It was decoded with U+FFFD replacement characters."""


class BadBanner(AMIProtocolError):
    """The first line of the connection is not ``Asterisk Call Manager/<version>``."""


class TruncatedMessage(AMIProtocolError):
    """The connection ended (EOF) in the middle of a message. The partial message is dropped."""


class InvalidAction(AMIError, ValueError):
    """An action to serialise has an empty/invalid header name or a CR/LF inside a value.

    Raised (not returned) by :func:`ami_bridge.protocol.serialize_action`: it is a programming
    or data error on our side, and sending it would let a value inject extra AMI headers.
    """


# --- connection manager and action errors (ami_bridge.connection / ami_bridge.actions) -------


class NotConnected(AMIError):
    """The link to this Asterisk server is not up (or not logged in yet). Nothing was sent,
    so the action may safely be retried later or on another server."""


class DuplicateActionID(AMIError, ValueError):
    """An action was sent with an ActionID that is still waiting for its reply. Not sent."""


class AuthenticationFailed(AMIError):
    """Asterisk refused the Login (wrong username or secret). The link backs off and alerts."""


class ActionOutcomeUnknown(AMIError):
    """The action was written but no reply came back: Asterisk may or may not have run it.

    Never retry an Originate after this error: the call tracker resolves its fate (events,
    then reconciliation with ``CoreShowChannels`` after a reconnect).
    """


class ActionTimeout(ActionOutcomeUnknown):
    """No reply within ``action_timeout`` seconds."""


class ConnectionLost(ActionOutcomeUnknown):
    """The connection dropped while the action was waiting for its reply."""


class ActionFailed(AMIError):
    """Asterisk answered ``Response: Error``. ``reason`` is its ``Message:`` header."""

    def __init__(self, action: str, reason: str, *, action_id: str | None = None) -> None:
        super().__init__(f"AMI {action} failed: {reason}")
        self.action = action
        self.reason = reason
        self.action_id = action_id


class NoSuchChannel(ActionFailed):
    """The channel is gone (``No such channel`` / ``Channel does not exist: ...``)."""


class PermissionDenied(ActionFailed):
    """The AMI user lacks the write class for this action (``Permission denied``)."""


class OriginateRejected(ActionFailed):
    """Asterisk refused to queue the Originate. No call was placed."""
