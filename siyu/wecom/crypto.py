"""WeCom callback message cipher (企业微信 回调 加解密).

WeCom signs and encrypts every callback it sends to us, and expects passive replies to be
encrypted the same way. The scheme is described in WeCom's "加解密方案说明"
(https://developer.work.weixin.qq.com/document/path/91144):

* ``EncodingAESKey`` is 43 base64 characters; ``AESKey = base64decode(EncodingAESKey + "=")``
  is 32 bytes, and the IV is its first 16 bytes. The cipher is AES-256-CBC.
* The plaintext is ``random(16) + msg_len(4, network byte order) + msg + receiveid``, padded
  with PKCS#7 to a multiple of **32** bytes (pad value 1..32), then encrypted and base64-encoded.
  ``receiveid`` is the corp id for a self-built app, or the suite id / "" in other scenarios.
* ``msg_signature = sha1("".join(sorted([token, timestamp, nonce, encrypt])))`` in hex.

Every failure raises a subclass of :class:`WeComCryptoError` carrying WeCom's error code
(-40001 .. -40011), never a bare ``IndexError`` or an exception from ``cryptography``.
Which code is used where:

* -40001 :class:`ValidateSignatureError`: ``msg_signature`` does not match.
* -40002 :class:`ParseXmlError`: the body is not well-formed XML, declares a DTD or entity,
  or has no (or more than one) ``Encrypt`` element.
* -40003 :class:`ComputeSignatureError`: a signature input is not a string or cannot be
  encoded as UTF-8.
* -40004 :class:`IllegalAesKey`: the EncodingAESKey is not 43 base64 characters decoding to
  32 bytes.
* -40005 :class:`ValidateCorpidError`: the receiveid inside the plaintext is not ours.
* -40006 :class:`EncryptAESError`: the plaintext cannot be encoded or encrypted.
* -40007 :class:`DecryptAESError`: the ciphertext is empty, not a whole number of 32-byte
  blocks, or decrypts to invalid PKCS#7 padding (wrong key, or tampered ciphertext).
* -40008 :class:`IllegalBuffer`: the padding is fine but the content is not: shorter than
  the 20-byte header, a ``msg_len`` longer than the buffer, or a message that is not UTF-8.
* -40010 :class:`DecodeBase64Error`: the ciphertext is not valid base64.
* -40011 :class:`GenReturnXmlError`: a reply XML cannot be generated safely (e.g. a nonce
  containing ``]]>``).
* -40009 :class:`EncodeBase64Error` exists for completeness; base64 encoding cannot fail.

Stale-timestamp and replay (nonce) checks are the HTTP endpoint's job, not this module's.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import struct
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

__all__ = [
    "CallbackCipher",
    "ComputeSignatureError",
    "DecodeBase64Error",
    "DecryptAESError",
    "EncodeBase64Error",
    "EncryptAESError",
    "EncryptedMessage",
    "GenReturnXmlError",
    "IllegalAesKey",
    "IllegalBuffer",
    "ParseXmlError",
    "ValidateCorpidError",
    "ValidateSignatureError",
    "WeComCryptoError",
    "WeComErrorCode",
    "parse_event_xml",
    "parse_xml",
]

ENCODING_AES_KEY_LENGTH = 43
AES_KEY_LENGTH = 32
BLOCK_SIZE = 32  # WeCom pads to 32 bytes, not to the 16-byte AES block.
RANDOM_LENGTH = 16
_LENGTH_FIELD = struct.Struct(">I")
_HEADER_LENGTH = RANDOM_LENGTH + _LENGTH_FIELD.size

_ENCODING_AES_KEY_RE = re.compile(r"[A-Za-z0-9+/]{43}")
# Characters XML 1.0 allows in a document (https://www.w3.org/TR/xml/#charsets).
_XML_INVALID_CHAR_RE = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_FORBIDDEN_XML_MARKUP_RE = re.compile(r"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


# --------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------


class WeComErrorCode(IntEnum):
    """WeCom's return codes for the callback crypto library ("加解密库的返回码")."""

    VALIDATE_SIGNATURE_ERROR = -40001
    PARSE_XML_ERROR = -40002
    COMPUTE_SIGNATURE_ERROR = -40003
    ILLEGAL_AES_KEY = -40004
    VALIDATE_CORPID_ERROR = -40005
    ENCRYPT_AES_ERROR = -40006
    DECRYPT_AES_ERROR = -40007
    ILLEGAL_BUFFER = -40008
    ENCODE_BASE64_ERROR = -40009
    DECODE_BASE64_ERROR = -40010
    GEN_RETURN_XML_ERROR = -40011


class WeComCryptoError(Exception):
    """Base class of every error raised here; ``code`` is WeCom's error code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.message} (WeCom error {self.code})"


class _CodedError(WeComCryptoError):
    CODE: ClassVar[WeComErrorCode]

    def __init__(self, message: str) -> None:
        super().__init__(self.CODE, message)


class ValidateSignatureError(_CodedError):
    CODE = WeComErrorCode.VALIDATE_SIGNATURE_ERROR


class ParseXmlError(_CodedError):
    CODE = WeComErrorCode.PARSE_XML_ERROR


class ComputeSignatureError(_CodedError):
    CODE = WeComErrorCode.COMPUTE_SIGNATURE_ERROR


class IllegalAesKey(_CodedError):
    CODE = WeComErrorCode.ILLEGAL_AES_KEY


class ValidateCorpidError(_CodedError):
    CODE = WeComErrorCode.VALIDATE_CORPID_ERROR


class EncryptAESError(_CodedError):
    CODE = WeComErrorCode.ENCRYPT_AES_ERROR


class DecryptAESError(_CodedError):
    CODE = WeComErrorCode.DECRYPT_AES_ERROR


class IllegalBuffer(_CodedError):
    CODE = WeComErrorCode.ILLEGAL_BUFFER


class EncodeBase64Error(_CodedError):
    CODE = WeComErrorCode.ENCODE_BASE64_ERROR


class DecodeBase64Error(_CodedError):
    CODE = WeComErrorCode.DECODE_BASE64_ERROR


class GenReturnXmlError(_CodedError):
    CODE = WeComErrorCode.GEN_RETURN_XML_ERROR


# --------------------------------------------------------------------------------------
# Safe XML
# --------------------------------------------------------------------------------------


def parse_xml(xml: str | bytes) -> ET.Element:
    """Parse an XML document with ElementTree, refusing DTDs and entity declarations.

    Bytes must be UTF-8 (WeCom always sends UTF-8); they are decoded here so that the check
    for ``<!DOCTYPE`` / ``<!ENTITY`` sees exactly the characters the parser will see
    (a ``str`` is always parsed as UTF-8, whatever its XML declaration says).
    Raises :class:`ParseXmlError` on anything else.
    """
    if isinstance(xml, bytes | bytearray | memoryview):
        try:
            text = bytes(xml).decode("utf-8")
        except UnicodeDecodeError:
            raise ParseXmlError("The XML body is not valid UTF-8.") from None
    elif isinstance(xml, str):
        text = xml
    else:
        raise ParseXmlError(f"Expected XML as str or bytes, got {type(xml).__name__}.")
    text = text.removeprefix("\ufeff")
    if _FORBIDDEN_XML_MARKUP_RE.search(text):
        raise ParseXmlError("The XML body declares a DTD or an entity, which is not allowed.")
    try:
        return ET.fromstring(text)
    except ET.ParseError as exc:
        raise ParseXmlError(f"The XML body is not well-formed: {exc}.") from None


def parse_event_xml(xml: str | bytes) -> dict[str, str]:
    """Flatten a decrypted message or event into ``{child tag: text}``.

    Only direct children of the root that have no children of their own are included
    (``ToUserName``, ``CreateTime``, ``MsgType``, ``Event``, ``ChangeType``, ``UserID``,
    ``ExternalUserID``, ``State``, ``WelcomeCode``, ...); an empty element maps to ``""``.
    Nested structures are left out; parse them with :func:`parse_xml` where needed.
    A tag that appears twice raises :class:`ParseXmlError` rather than letting one copy win.
    """
    root = parse_xml(xml)
    fields: dict[str, str] = {}
    for child in root:
        if not isinstance(child.tag, str) or len(child):
            continue
        if child.tag in fields:
            raise ParseXmlError(f"The XML has more than one <{child.tag}> element.")
        fields[child.tag] = child.text or ""
    return fields


def _extract_encrypt(body: str | bytes) -> str:
    root = parse_xml(body)
    found = root.findall("Encrypt")
    if not found:
        raise ParseXmlError("The XML body has no <Encrypt> element.")
    if len(found) > 1:
        raise ParseXmlError("The XML body has more than one <Encrypt> element.")
    encrypt = found[0].text or ""
    if not encrypt:
        raise ParseXmlError("The <Encrypt> element is empty.")
    return encrypt


def _single_text(root: ET.Element, tag: str) -> str:
    found = root.findall(tag)
    if len(found) != 1:
        raise ParseXmlError(f"The XML must have exactly one <{tag}> element.")
    return found[0].text or ""


def _cdata(value: str, field: str) -> str:
    if "]]>" in value or _XML_INVALID_CHAR_RE.search(value):
        raise GenReturnXmlError(f"The {field} cannot be placed in a CDATA section.")
    return f"<![CDATA[{value}]]>"


def _xml_text(value: str, field: str) -> str:
    if _XML_INVALID_CHAR_RE.search(value):
        raise GenReturnXmlError(f"The {field} contains characters XML does not allow.")
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# --------------------------------------------------------------------------------------
# The cipher
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EncryptedMessage:
    """An encrypted, signed message: everything needed to send it either way."""

    encrypt: str
    msg_signature: str
    timestamp: str
    nonce: str

    def to_xml(self) -> str:
        """The passive-reply body WeCom expects from us (Encrypt, MsgSignature, TimeStamp, Nonce)."""
        return (
            "<xml>"
            f"<Encrypt>{_cdata(self.encrypt, 'ciphertext')}</Encrypt>"
            f"<MsgSignature>{_cdata(self.msg_signature, 'signature')}</MsgSignature>"
            f"<TimeStamp>{_xml_text(self.timestamp, 'timestamp')}</TimeStamp>"
            f"<Nonce>{_cdata(self.nonce, 'nonce')}</Nonce>"
            "</xml>"
        )

    def to_callback_xml(self, *, to_user_name: str, agent_id: str | None = None) -> str:
        """The POST body WeCom sends to a callback URL (ToUserName, Encrypt, AgentID).

        The signature, timestamp and nonce travel in the query string: see :meth:`query_params`.
        """
        agent = "" if agent_id is None else f"<AgentID>{_cdata(agent_id, 'agent id')}</AgentID>"
        return (
            "<xml>"
            f"<ToUserName>{_cdata(to_user_name, 'ToUserName')}</ToUserName>"
            f"<Encrypt>{_cdata(self.encrypt, 'ciphertext')}</Encrypt>"
            f"{agent}"
            "</xml>"
        )

    def query_params(self) -> dict[str, str]:
        """``msg_signature``, ``timestamp`` and ``nonce`` as a callback URL carries them."""
        return {
            "msg_signature": self.msg_signature,
            "timestamp": self.timestamp,
            "nonce": self.nonce,
        }


def _decode_aes_key(encoding_aes_key: str) -> bytes:
    if not isinstance(encoding_aes_key, str) or not _ENCODING_AES_KEY_RE.fullmatch(
        encoding_aes_key
    ):
        raise IllegalAesKey(
            f"The EncodingAESKey must be exactly {ENCODING_AES_KEY_LENGTH} base64 characters."
        )
    try:
        key = binascii.a2b_base64(encoding_aes_key + "=", strict_mode=True)
    except (binascii.Error, ValueError):
        raise IllegalAesKey("The EncodingAESKey is not valid base64.") from None
    if len(key) != AES_KEY_LENGTH:  # pragma: no cover - guaranteed by the regex above
        raise IllegalAesKey(f"The EncodingAESKey must decode to {AES_KEY_LENGTH} bytes.")
    return key


def _strict_b64decode(text: str) -> bytes:
    """Standard base64 with canonical "=" padding and nothing else, or DecodeBase64Error.

    strict_mode refuses characters outside the alphabet (whitespace, "-", "_", non-ASCII),
    leading, discontinuous or missing padding and data after it; the length check refuses
    what it lets through, "=" beyond the canonical padding ("YWJj===="). One C call instead
    of a regular expression over the whole ciphertext.
    """
    try:
        data = binascii.a2b_base64(text, strict_mode=True)
    except (binascii.Error, ValueError) as exc:  # ValueError: a non-ASCII str
        raise DecodeBase64Error(f"The ciphertext is not valid base64: {exc}.") from None
    if len(text) != 4 * ((len(data) + 2) // 3):
        raise DecodeBase64Error("The ciphertext is not valid base64: excess padding.")
    return data


class CallbackCipher:
    """Signs, verifies, encrypts and decrypts WeCom callback messages for one receiver.

    ``receive_id`` is the id WeCom puts at the end of every plaintext and that decryption
    checks: the corp id for a self-built app's callbacks; the suite id or another id for
    third-party scenarios (see "附注：ReceiveId 含义" in WeCom's docs); ``""`` for an
    in-house smart robot.
    """

    __slots__ = ("_aes", "_receive_id_bytes", "_token", "receive_id")

    def __init__(self, *, token: str, encoding_aes_key: str, receive_id: str) -> None:
        if not isinstance(token, str) or not token:
            raise ValueError("The callback token must be a non-empty string.")
        if not isinstance(receive_id, str):
            raise TypeError("The receive_id must be a string.")
        self._token = token
        key = _decode_aes_key(encoding_aes_key)
        # Built once per receiver, not per message: each operation only takes a fresh
        # encryptor/decryptor context from it (a Cipher holds no per-message state).
        self._aes = Cipher(algorithms.AES(key), modes.CBC(key[:16]))
        try:
            self._receive_id_bytes = receive_id.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("The receive_id is not valid Unicode.") from None
        self.receive_id = receive_id

    def __repr__(self) -> str:  # never show the token or the key
        return f"CallbackCipher(receive_id={self.receive_id!r})"

    # ----- signature ----------------------------------------------------------------

    def signature(self, timestamp: str, nonce: str, encrypt: str) -> str:
        """``sha1`` (hex) of the sorted concatenation of token, timestamp, nonce and encrypt."""
        parts = [self._token, timestamp, nonce, encrypt]
        if not all(isinstance(part, str) for part in parts):
            raise ComputeSignatureError("The timestamp, nonce and ciphertext must be strings.")
        try:
            data = "".join(sorted(parts)).encode("utf-8")
        except UnicodeEncodeError:
            raise ComputeSignatureError("The signature inputs are not valid Unicode.") from None
        return hashlib.sha1(data).hexdigest()

    def _verify_signature(
        self, msg_signature: str, timestamp: str, nonce: str, encrypt: str
    ) -> None:
        expected = self.signature(timestamp, nonce, encrypt)
        if (
            not isinstance(msg_signature, str)
            or not msg_signature.isascii()
            or not hmac.compare_digest(expected, msg_signature)
        ):
            raise ValidateSignatureError("The msg_signature does not match the message.")

    # ----- the three operations -----------------------------------------------------

    def verify_url(self, *, msg_signature: str, timestamp: str, nonce: str, echostr: str) -> str:
        """Handle the GET that verifies a callback URL: check, decrypt, return the echo text.

        ``echostr`` must already be URL-decoded. The return value is the response body,
        to be sent back verbatim (no quotes, BOM or newline).
        """
        self._verify_signature(msg_signature, timestamp, nonce, echostr)
        return self._decrypt(echostr)

    def decrypt_message(
        self, *, msg_signature: str, timestamp: str, nonce: str, body: str | bytes
    ) -> str:
        """Handle a callback POST: parse the body, check the signature, return the inner XML."""
        encrypt = _extract_encrypt(body)
        self._verify_signature(msg_signature, timestamp, nonce, encrypt)
        return self._decrypt(encrypt)

    def decrypt_reply(self, body: str | bytes) -> str:
        """Decrypt a passive-reply body (as made by :meth:`EncryptedMessage.to_xml`).

        The signature, timestamp and nonce are read from the body itself. This is the
        receiving end of a reply, i.e. what WeCom (or our simulator of it) does.
        """
        root = parse_xml(body)
        encrypt = _single_text(root, "Encrypt")
        if not encrypt:
            raise ParseXmlError("The <Encrypt> element is empty.")
        self._verify_signature(
            _single_text(root, "MsgSignature"),
            _single_text(root, "TimeStamp"),
            _single_text(root, "Nonce"),
            encrypt,
        )
        return self._decrypt(encrypt)

    def encrypt(
        self, plaintext: str, *, nonce: str, timestamp: str, random16: bytes | None = None
    ) -> EncryptedMessage:
        """Encrypt and sign ``plaintext`` for :attr:`receive_id`.

        ``random16`` fixes the 16 random leading bytes (for reproducible tests); by default
        they come from :mod:`secrets`. Use ``.to_xml()`` for a passive reply, or
        ``.to_callback_xml()`` with ``.query_params()`` to send a callback as WeCom does.
        """
        if random16 is None:
            random16 = secrets.token_bytes(RANDOM_LENGTH)
        elif not isinstance(random16, bytes) or len(random16) != RANDOM_LENGTH:
            raise ValueError(f"random16 must be exactly {RANDOM_LENGTH} bytes.")
        if not isinstance(plaintext, str):
            raise EncryptAESError("The plaintext must be a string.")
        try:
            msg = plaintext.encode("utf-8")
        except UnicodeEncodeError:
            raise EncryptAESError("The plaintext is not valid Unicode.") from None
        if len(msg) >= 2**32:
            raise EncryptAESError("The plaintext is too long to encrypt.")
        encrypt = self._encrypt_bytes(
            random16 + _LENGTH_FIELD.pack(len(msg)) + msg + self._receive_id_bytes
        )
        return EncryptedMessage(
            encrypt=encrypt,
            msg_signature=self.signature(timestamp, nonce, encrypt),
            timestamp=timestamp,
            nonce=nonce,
        )

    # ----- the raw cipher -----------------------------------------------------------

    def _decrypt(self, encrypt: str) -> str:
        """Decrypt a ciphertext (signature already checked), check the receiveid, return msg."""
        message, receive_id = self._decrypt_bytes(encrypt)
        if not hmac.compare_digest(receive_id, self._receive_id_bytes):
            raise ValidateCorpidError("The message was encrypted for a different receive id.")
        try:
            return message.decode("utf-8")
        except UnicodeDecodeError:
            raise IllegalBuffer("The decrypted message is not valid UTF-8.") from None

    def _encrypt_bytes(self, data: bytes) -> str:
        pad = BLOCK_SIZE - len(data) % BLOCK_SIZE  # 1..32; a full block when already aligned
        try:
            encryptor = self._aes.encryptor()
            ciphertext = encryptor.update(data + bytes([pad]) * pad) + encryptor.finalize()
        except Exception as exc:  # cryptography errors must not leak out
            raise EncryptAESError(f"AES encryption failed: {exc}.") from None
        return base64.b64encode(ciphertext).decode("ascii")

    def _decrypt_bytes(self, encrypt: str) -> tuple[bytes, bytes]:
        """Return ``(msg, receiveid)`` from a base64 ciphertext."""
        if not isinstance(encrypt, str):
            raise DecodeBase64Error("The ciphertext must be a base64 string.")
        ciphertext = _strict_b64decode(encrypt)
        if not ciphertext or len(ciphertext) % BLOCK_SIZE:
            raise DecryptAESError(
                f"The ciphertext length must be a positive multiple of {BLOCK_SIZE} bytes."
            )
        try:
            decryptor = self._aes.decryptor()
            plain = decryptor.update(ciphertext) + decryptor.finalize()
        except Exception as exc:  # cryptography errors must not leak out
            raise DecryptAESError(f"AES decryption failed: {exc}.") from None

        pad = plain[-1]
        if not 1 <= pad <= BLOCK_SIZE or plain[-pad:] != bytes([pad]) * pad:
            raise DecryptAESError(
                "The decrypted data has invalid padding; the key is wrong or the ciphertext "
                "was altered."
            )
        content = plain[:-pad]
        if len(content) < _HEADER_LENGTH:
            raise IllegalBuffer("The decrypted data is shorter than its 20-byte header.")
        (msg_len,) = _LENGTH_FIELD.unpack_from(content, RANDOM_LENGTH)
        if msg_len > len(content) - _HEADER_LENGTH:
            raise IllegalBuffer("The message length field is longer than the decrypted data.")
        msg_end = _HEADER_LENGTH + msg_len
        return content[_HEADER_LENGTH:msg_end], content[msg_end:]
