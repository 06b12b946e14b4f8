"""Sans-IO codec for the Asterisk Manager Interface (AMI), in the style of h11.

No sockets, no asyncio, no clock: bytes go in, parsed items come out. The connection manager
owns the transport and calls this code from its ``data_received``.

Wire format (all observed in ``ami-transcripts/``):

* The connection starts with a banner: one CRLF-terminated line,
  ``Asterisk Call Manager/11.0.0``. It is *not* an empty-line-terminated block.
* Every message is a block of ``Key: Value`` lines, each ending in CRLF, and the block ends with
  an empty line (``\\r\\n\\r\\n``). Keys may repeat (``Variable:``, ``Output:``); order is kept.

Parsing::

    parser = AMIParser()                  # expects a banner first (expect_banner=True)
    for item in parser.feed(chunk):       # call once per TCP read, any chunk boundaries
        if isinstance(item, Message): ...        # a complete message
        elif isinstance(item, Banner): ...       # once, at the start
        elif isinstance(item, AMIProtocolError): # bad input: log it, carry on
            ...
    parser.feed_eof()                     # at EOF: reports a truncated message, if any

``feed`` never raises on bad input. It returns the errors as items instead (subclasses of
:class:`~ami_bridge.errors.AMIProtocolError`):

* ``MessageTooLarge``: no message boundary within ``max_message_size`` bytes (for example a
  1 MB header). The buffer is dropped at once (memory stays bounded), and the parser skips
  input until the next empty line, then resumes.
* ``InvalidEncoding``: a message was not UTF-8. It is still returned, decoded with U+FFFD
  replacement characters, with ``Message.encoding_errors`` set. UTF-8 characters split across
  reads are fine: a message is decoded only once it is complete.
* ``MalformedLine``: a line without a colon inside a message (dropped; the rest is kept).
* ``MalformedMessage``: a block with no header at all (dropped).
* ``BadBanner``: the first line was not an AMI banner.
* ``TruncatedMessage``: from ``feed_eof()`` when the stream ended mid-message.

Encoding actions::

    serialize_action("Originate", [("Channel", "PJSIP/..."), ("Variable", "A=1"),
                                   ("Variable", "B=2"), ("Async", "true")],
                     action_id="orig-1") -> bytes

``serialize_action`` raises :class:`~ami_bridge.errors.InvalidAction` if a name or value holds
CR or LF (header injection) or a name is empty or has a colon.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Final

from ami_bridge.errors import (
    AMIProtocolError,
    BadBanner,
    InvalidAction,
    InvalidEncoding,
    MalformedLine,
    MalformedMessage,
    MessageTooLarge,
    TruncatedMessage,
)

__all__ = [
    "BANNER_PREFIX",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "AMIParser",
    "Banner",
    "Message",
    "ParsedItem",
    "serialize_action",
]

BANNER_PREFIX: Final = "Asterisk Call Manager/"
#: Largest message accepted. Real AMI messages are below 4 KiB; list items with many channel
#: variables stay well under this. Anything larger is treated as garbage.
DEFAULT_MAX_MESSAGE_SIZE: Final = 64 * 1024

_TERM: Final = b"\r\n\r\n"
_TERM_S: Final = "\r\n\r\n"


class Banner:
    """The greeting line, e.g. ``Asterisk Call Manager/11.0.0`` (``version`` = ``11.0.0``)."""

    __slots__ = ("line", "version")

    def __init__(self, line: str) -> None:
        self.line = line
        self.version = line[len(BANNER_PREFIX) :].strip() if line.startswith(BANNER_PREFIX) else ""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Banner) and other.line == self.line

    def __hash__(self) -> int:
        return hash(self.line)

    def __repr__(self) -> str:
        return f"Banner({self.line!r})"


class Message:
    """One AMI message: ordered ``(key, value)`` headers, repeats kept.

    * ``message["Key"]`` / ``message.get("Key")``: first value; exact key first, then a
      case-insensitive match (AMI keys are case-insensitive).
    * ``message.getall("Variable")``: every value of a repeated key, in order.
    * ``message.headers``: ``tuple[tuple[str, str], ...]`` in wire order.
    * ``message.index``: ``{key: first value}`` with exact keys (fast lookups).
    * ``message.name``: the ``Event`` value, else the ``Response`` value, else ``""``.
    * ``message.encoding_errors``: the bytes were not UTF-8 (decoded with U+FFFD).
    """

    __slots__ = ("_index", "_pairs", "_text", "encoding_errors")

    _pairs: tuple[tuple[str, str], ...] | None  # built lazily from _text
    _text: str | None  # the decoded block, when built by the parser
    _index: dict[str, str]
    encoding_errors: bool

    def __init__(
        self, headers: Iterable[tuple[str, str]], *, encoding_errors: bool = False
    ) -> None:
        pairs = tuple((str(k), str(v)) for k, v in headers)
        self._pairs = pairs
        self._text = None
        self._index = _first_wins(pairs)
        self.encoding_errors = encoding_errors

    @classmethod
    def _trusted(
        cls,
        text: str | None,
        pairs: tuple[tuple[str, str], ...] | None,
        index: dict[str, str],
        encoding_errors: bool,
    ) -> Message:
        # The parser's fast path: keep the decoded text and the index; the ordered header
        # tuple is rebuilt from the text only if someone asks for it (keeps GC pressure low).
        self = cls.__new__(cls)
        self._text = text
        self._pairs = pairs
        self._index = index
        self.encoding_errors = encoding_errors
        return self

    @classmethod
    def from_mapping(cls, headers: Mapping[str, str]) -> Message:
        return cls(tuple(headers.items()))

    @property
    def headers(self) -> tuple[tuple[str, str], ...]:
        pairs = self._pairs
        if pairs is None:
            text = self._text or ""
            pairs = tuple((k, v) for k, _, v in (ln.partition(": ") for ln in text.split("\r\n")))
            self._pairs = pairs
        return pairs

    @property
    def index(self) -> Mapping[str, str]:
        """First value per exact key (read-only by convention; used by the event decoder)."""
        return self._index

    def get(self, key: str, default: str | None = None) -> str | None:
        value = self._index.get(key)
        if value is not None:
            return value
        lower = key.lower()
        for k, v in self.headers:
            if k.lower() == lower:
                return v
        return default

    def __getitem__(self, key: str) -> str:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def getall(self, key: str) -> list[str]:
        lower = key.lower()
        return [v for k, v in self.headers if k.lower() == lower]

    @property
    def name(self) -> str:
        index = self._index
        return index.get("Event") or index.get("Response") or ""

    @property
    def is_event(self) -> bool:
        return "Event" in self._index

    @property
    def is_response(self) -> bool:
        return "Response" in self._index and "Event" not in self._index

    @property
    def action_id(self) -> str | None:
        return self._index.get("ActionID")

    def to_bytes(self) -> bytes:
        """Re-encode (CRLF, empty line at the end)."""
        return "".join(f"{k}: {v}\r\n" for k, v in self.headers).encode() + b"\r\n"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Message) and other.headers == self.headers

    def __hash__(self) -> int:
        return hash(self.headers)

    def __repr__(self) -> str:
        return f"Message({list(self.headers)!r})"


def _first_wins(pairs: Sequence[Sequence[str]]) -> dict[str, str]:
    index: dict[str, str] = dict(pairs)  # type: ignore[arg-type]
    if len(index) != len(pairs):  # repeated keys: the first value wins, as in Asterisk
        index = {}
        for p in pairs:
            index.setdefault(p[0], p[1])
    return index


ParsedItem = Message | Banner | AMIProtocolError


def _split_headers(
    text: str, out: list[ParsedItem], encoding_errors: bool = False
) -> Message | None:
    """Turn one decoded block into a Message. Appends MalformedLine errors to ``out``."""
    pairs = [line.split(": ", 1) for line in text.split("\r\n")]
    try:
        index = dict(pairs)  # ValueError: a line without ": "
    except ValueError:
        return _split_headers_slow(text, out, encoding_errors)
    if len(index) != len(pairs):
        index = _first_wins(pairs)
    return Message._trusted(text, None, index, encoding_errors)


def _split_headers_slow(text: str, out: list[ParsedItem], encoding_errors: bool) -> Message | None:
    headers: list[tuple[str, str]] = []
    bad: list[str] = []
    for line in text.split("\r\n"):
        key, sep, value = line.partition(":")
        if sep and key:
            if value[:1] == " ":
                value = value[1:]
            headers.append((key, value))
        elif line:
            bad.append(line)
    if not headers:
        if bad:
            out.append(
                MalformedMessage("AMI block without any header; dropped", sample=text.encode())
            )
        return None
    for line in bad:
        out.append(MalformedLine("AMI line without 'Key: Value'; dropped", sample=line.encode()))
    return Message._trusted(None, tuple(headers), _first_wins(headers), encoding_errors)


class AMIParser:
    """Incremental AMI parser. See the module docstring.

    ``max_message_size`` bounds memory: the internal buffer never holds more than that many
    bytes of an incomplete message (plus the last read). ``expect_banner=False`` parses a
    stream that starts directly with messages (e.g. the simulator's test feeds).
    """

    __slots__ = ("_banner_done", "_buf", "_discarded", "_discarding", "_max", "_scan")

    def __init__(
        self, *, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE, expect_banner: bool = True
    ) -> None:
        if max_message_size < 64:
            raise ValueError("max_message_size must be at least 64 bytes")
        self._max = max_message_size
        self._buf = b""
        self._scan = 0  # where to resume searching for a terminator in _buf
        self._banner_done = not expect_banner
        self._discarding = False
        self._discarded = 0

    @property
    def buffered(self) -> int:
        """Bytes held for an incomplete message (always <= max_message_size + last read)."""
        return len(self._buf)

    @property
    def banner_received(self) -> bool:
        return self._banner_done

    def feed(self, data: bytes) -> list[ParsedItem]:
        out: list[ParsedItem] = []
        if not data:
            return out
        buf = self._buf + data if self._buf else data
        if self._discarding:
            buf = self._skip_garbage(buf, out)
            if self._discarding:
                self._buf = buf
                return out
        if not self._banner_done:
            buf = self._parse_banner(buf, out)
            if not self._banner_done:
                self._buf = buf
                return out
        end = buf.rfind(_TERM, self._scan)
        if end == -1:
            self._keep_tail(buf, out)
            return out
        # Decode all complete messages at once (the fast path: valid UTF-8), then split.
        chunk = buf[:end]
        rest = buf[end + 4 :]
        try:
            blocks: list[str] = chunk.decode("utf-8").split(_TERM_S)
            self._emit_blocks(blocks, out)
        except UnicodeDecodeError:
            self._emit_raw_blocks(chunk, out)
        self._scan = 0
        self._keep_tail(rest, out)
        return out

    def feed_eof(self) -> list[ParsedItem]:
        """Signal EOF. Returns a TruncatedMessage if a partial message was pending."""
        out: list[ParsedItem] = []
        buf = self._buf
        self._buf = b""
        self._scan = 0
        if self._discarding:
            self._discarding = False
            self._discarded = 0
            return out
        if buf.strip(b"\r\n"):
            out.append(TruncatedMessage("AMI stream ended inside a message", sample=buf))
        return out

    # -- internals ---------------------------------------------------------------------------

    def _emit_blocks(self, blocks: list[str], out: list[ParsedItem]) -> None:
        limit = self._max
        append = out.append
        for block in blocks:
            if len(block) > limit:
                append(MessageTooLarge(len(block), limit, sample=block[:80].encode()))
                continue
            if not block:
                continue
            msg = _split_headers(block, out)
            if msg is not None:
                append(msg)

    def _emit_raw_blocks(self, chunk: bytes, out: list[ParsedItem]) -> None:
        limit = self._max
        for raw in chunk.split(_TERM):
            if len(raw) > limit:
                out.append(MessageTooLarge(len(raw), limit, sample=raw))
                continue
            if not raw:
                continue
            try:
                text = raw.decode("utf-8")
                bad = False
            except UnicodeDecodeError:
                text = raw.decode("utf-8", "replace")
                bad = True
                out.append(
                    InvalidEncoding(
                        "AMI message is not valid UTF-8; decoded with replacement", sample=raw
                    )
                )
            msg = _split_headers(text, out, bad)
            if msg is not None:
                out.append(msg)

    def _keep_tail(self, buf: bytes, out: list[ParsedItem]) -> None:
        if len(buf) > self._max:
            out.append(MessageTooLarge(len(buf), self._max, sample=buf))
            self._discarding = True
            self._discarded = len(buf)
            # Keep the last 3 bytes: a terminator may straddle this read and the next one.
            self._buf = buf[-3:]
            self._scan = 0
            return
        self._buf = buf
        self._scan = max(0, len(buf) - 3)

    def _skip_garbage(self, buf: bytes, out: list[ParsedItem]) -> bytes:
        pos = buf.find(_TERM)
        if pos == -1:
            self._discarded += len(buf) - 3
            return buf[-3:]
        self._discarding = False
        self._discarded = 0
        self._scan = 0
        return buf[pos + 4 :]

    def _parse_banner(self, buf: bytes, out: list[ParsedItem]) -> bytes:
        pos = buf.find(b"\r\n")
        if pos == -1:
            if len(buf) > self._max:
                out.append(MessageTooLarge(len(buf), self._max, sample=buf))
                self._banner_done = True
                self._discarding = True
                self._discarded = len(buf)
                return buf[-3:]
            return buf
        line = buf[:pos].decode("utf-8", "replace")
        self._banner_done = True
        if line.startswith(BANNER_PREFIX):
            out.append(Banner(line))
            return buf[pos + 2 :]
        out.append(BadBanner("first AMI line is not a banner", sample=buf[:pos]))
        if ":" in line:
            return buf  # looks like a header: parse it as part of a message
        return buf[pos + 2 :]


def parse_messages(data: bytes, *, expect_banner: bool = False) -> list[ParsedItem]:
    """Parse a complete byte string at once (convenience for tests and tools)."""
    parser = AMIParser(expect_banner=expect_banner, max_message_size=max(64, len(data) + 4))
    return parser.feed(data) + parser.feed_eof()


def _check(text: str, what: str) -> str:
    if "\r" in text or "\n" in text:
        raise InvalidAction(f"AMI {what} must not contain CR or LF: {text[:40]!r}")
    return text


def serialize_action(
    name: str,
    headers: Mapping[str, str] | Sequence[tuple[str, str]] = (),
    *,
    action_id: str | None = None,
    variables: Mapping[str, str] | None = None,
) -> bytes:
    """Encode an action: ``Action: <name>``, ``ActionID`` (if given), the headers in order,
    one ``Variable: k=v`` line per entry of ``variables``, then the empty line.

    Repeated keys are allowed in the sequence form (``[("Variable", "A=1"), ("Variable",
    "B=2")]``). Raises :class:`InvalidAction` on CR/LF anywhere, or a bad header name.
    """
    if not name or ":" in name:
        raise InvalidAction(f"bad AMI action name {name!r}")
    parts = ["Action: ", _check(name, "action name"), "\r\n"]
    if action_id is not None:
        parts += ["ActionID: ", _check(action_id, "ActionID"), "\r\n"]
    items: Iterable[tuple[str, str]] = headers.items() if isinstance(headers, Mapping) else headers
    for key, value in items:
        if not key or ":" in key or key.strip() != key:
            raise InvalidAction(f"bad AMI header name {key!r}")
        parts += [_check(key, "header name"), ": ", _check(str(value), "header value"), "\r\n"]
    if variables:
        for key, value in variables.items():
            if not key or "=" in key:
                raise InvalidAction(f"bad channel variable name {key!r}")
            parts += ["Variable: ", _check(key, "variable"), "=", _check(value, "variable"), "\r\n"]
    parts.append("\r\n")
    return "".join(parts).encode("utf-8")


def iter_messages(items: Iterable[ParsedItem]) -> Iterator[Message]:
    """Only the Message items of a ``feed()`` result."""
    for item in items:
        if isinstance(item, Message):
            yield item
