"""Fuzzing the Kannel and Twilio webhook decoders: any parameters, charsets, codings and bodies
get an answer the gateway understands (200, or a 4xx saying why), never a 500."""

from __future__ import annotations

from urllib.parse import quote_from_bytes

from hypothesis import given
from hypothesis import strategies as st

from callcenter.sms.gateways.kannel import DLR_PATH
from callcenter.sms.gateways.kannel import INBOUND_PATH as KANNEL_INBOUND
from callcenter.sms.gateways.twilio import INBOUND_PATH as TWILIO_INBOUND
from callcenter.sms.gateways.twilio import STATUS_CALLBACK_PATH
from tests.fuzz import targets
from tests.fuzz.strategies import any_char, budget, fragment

CHARSETS = (
    "", "UTF-8", "utf-16be", "UCS-2", "ISO-8859-1", "8-bit", "windows-1256", "base64", "rot13",
    "idna", "punycode", "undefined", "zlib", "utf-7", "utf-32", "nonsense", "UTF-8\x00", " utf-8 ",
)  # fmt: skip
NAMES = tuple(
    n.encode()
    for n in (
        "from",
        "to",
        "text",
        "charset",
        "coding",
        "id",
        "time",
        "ref",
        "status",
        "answer",
        "secret",
        "udh",
    )
)


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


text_bytes = st.one_of(
    st.binary(max_size=60),
    fragment.map(_utf8),
    fragment.map(lambda s: s.encode("utf-16-be", "surrogatepass")),
    st.sampled_from((b"0912345678", b"+218912345678", b"1", b"2", b"16", b"1" * 5000, b"\xd9\xa3")),
)
value = st.one_of(text_bytes, st.sampled_from(CHARSETS).map(str.encode), st.sampled_from((b"0", b"2", b"8")))
query = st.lists(
    st.tuples(st.sampled_from(NAMES) | st.text(any_char, max_size=5).map(_utf8), value), max_size=8
)


def _query(pairs: list[tuple[bytes, bytes]]) -> bytes:
    return b"&".join(quote_from_bytes(k).encode() + b"=" + quote_from_bytes(v).encode() for k, v in pairs)


@budget(200)
@given(
    st.sampled_from(("GET", "POST")),
    st.sampled_from((KANNEL_INBOUND, DLR_PATH)),
    query.map(_query) | st.binary(max_size=80).map(lambda b: quote_from_bytes(b, safe="&=").encode()),
    text_bytes | query.map(_query),
    st.sampled_from(
        ("", "application/x-www-form-urlencoded", "text/plain; charset=UTF-16BE", "text/plain; charset=")
    ),
    st.booleans(),
)
def test_kannel_calls_get_200_or_a_clear_4xx(
    method: str, path: str, params: bytes, body: bytes, content_type: str, with_secret: bool
) -> None:
    targets.kannel(method, path, params, body, content_type, with_secret)


@budget(300)
@given(
    text_bytes,
    st.sampled_from(CHARSETS) | st.text(any_char, max_size=12),
    st.sampled_from(("", "0", "1", "2", "x")),
)
def test_kannel_text_decodes_whatever_the_charset(data: bytes, charset: str, coding: str) -> None:
    targets.kannel_text(data, charset, coding)


FIELDS = ("MessageSid", "SmsSid", "From", "To", "Body", "MessageStatus", "SmsStatus", "ErrorCode", "NumMedia")
field_value = st.one_of(
    st.text(any_char.filter(lambda c: not 0xD800 <= ord(c) <= 0xDFFF), max_size=40),
    st.sampled_from(("SM" + "a" * 32, "+218912345678", "delivered", "failed", "queued", "", "٣٠٠٠٥")),
)


@budget(150)
@given(
    st.sampled_from((TWILIO_INBOUND, STATUS_CALLBACK_PATH)),
    st.lists(st.tuples(st.sampled_from(FIELDS) | st.text(max_size=6), field_value), max_size=8),
    st.booleans(),
)
def test_twilio_calls_get_twiml_or_a_clear_4xx(
    path: str, fields: list[tuple[str, str]], signed: bool
) -> None:
    targets.twilio(path, fields, signed)
