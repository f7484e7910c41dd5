"""RSA keys and SHA256withRSA for the channel download APIs (``cryptography``).

Keys are accepted as PEM (PKCS#8, PKCS#1 or an X.509 certificate for public keys) or,
as Alipay's console hands them out, as bare base64 DER.
"""

from __future__ import annotations

import base64
import binascii

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from payrecon.errors import ConfigError


def load_private_key(data: bytes, what: str) -> rsa.RSAPrivateKey:
    """An RSA private key from PEM or bare base64 PKCS#8 / PKCS#1 DER."""
    key: object
    try:
        if b"-----BEGIN" in data:
            key = serialization.load_pem_private_key(data, password=None)
        else:
            key = serialization.load_der_private_key(_unbase64(data, what), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ConfigError(f"{what}: not a readable, unencrypted private key ({exc})") from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigError(f"{what}: an RSA private key is needed")
    return key


def load_public_key(data: bytes, what: str) -> rsa.RSAPublicKey:
    """An RSA public key from a PEM key, a PEM certificate or bare base64 DER."""
    key: object
    try:
        if b"-----BEGIN CERTIFICATE" in data:
            key = x509.load_pem_x509_certificate(data).public_key()
        elif b"-----BEGIN" in data:
            key = serialization.load_pem_public_key(data)
        else:
            key = serialization.load_der_public_key(_unbase64(data, what))
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ConfigError(f"{what}: not a readable public key or certificate ({exc})") from exc
    if not isinstance(key, rsa.RSAPublicKey):
        raise ConfigError(f"{what}: an RSA public key is needed")
    return key


def sign(key: rsa.RSAPrivateKey, message: bytes) -> str:
    """SHA256withRSA (PKCS#1 v1.5) signature, base64: WeChat v3 and Alipay RSA2."""
    signature = key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(signature).decode("ascii")


def verify(key: rsa.RSAPublicKey, message: bytes, signature: str) -> bool:
    """Whether ``signature`` (base64) is a SHA256withRSA signature of ``message``."""
    try:
        raw = base64.b64decode(signature, validate=True)
        key.verify(raw, message, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def _unbase64(data: bytes, what: str) -> bytes:
    try:
        return base64.b64decode(b"".join(data.split()), validate=True)
    except binascii.Error as exc:
        raise ConfigError(f"{what}: neither PEM nor base64 ({exc})") from exc
