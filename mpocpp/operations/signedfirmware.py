# The security whitepaper's secure firmware update (L01): what
# SignedUpdateFirmware adds to UpdateFirmware, whose job (operations/
# firmware.py) downloads and installs. Here: the signing certificate checked
# against the installed ManufacturerRootCertificates before the answer
# (L01.FR.23/24, no intermediate certificates), the signature over the whole
# downloaded file checked before anything of it is installed (L01.FR.04, the
# file hashed from flash piece by piece), their security events, sent
# although the whitepaper's table has them non-critical (L01.FR.02/03), and
# what a triggered SignedFirmwareStatusNotification reports (L01.FR.28/29).
# Loaded by firmware.py for the CALL; a started job keeps its Signature.
import asyncio
import binascii
from mpocpp.util import clock
from mpocpp.util import log
from mpocpp.util import modules

_TAG = "fw"
_CRYPTO = "mpocpp.security"


def prepare(fw, flash_dir, emit, pause):
    # fw: SignedUpdateFirmware.firmware; emit: SecurityEvents.emit; pause():
    # the charger's safety work, called from inside the crypto.
    # -> ("Accepted", Signature) or (the refusal's status, None).
    try:
        sig = _base64(fw["signature"])
    except ValueError:
        log.warn(_TAG, "SignedUpdateFirmware: signature is not base64")
        return "Rejected", None
    try:
        der = _signing_certificate(fw["signingCertificate"], flash_dir, pause)
    except ValueError as e:  # PemError, DerError, ChainError
        log.warn(_TAG, "SignedUpdateFirmware: signing certificate: %s", e)
        emit("InvalidFirmwareSigningCertificate", str(e), True)
        return "InvalidCertificate", None
    finally:
        modules.release_all(_CRYPTO)
    return "Accepted", Signature(der, sig, emit, pause)


def _base64(s):
    # Canonical base64 (line breaks allowed), not empty -> bytes
    s = "".join(s.split())
    b = binascii.a2b_base64(s)
    if not b or binascii.b2a_base64(b)[:-1] != s.encode():
        raise ValueError("base64")
    return b


def _signing_certificate(text, flash_dir, pause):
    # One PEM certificate, issued by an installed ManufacturerRootCertificate
    # (or one itself), valid now, usable for signatures -> its DER.
    from mpocpp.security import pem
    from mpocpp.security import x509
    from mpocpp.security import chain
    blocks = pem.decode(text)
    if len(blocks) != 1:
        raise ValueError("%d PEM certificates, one expected" % len(blocks))
    der = bytes(blocks[0])
    cert = x509.Certificate(der)
    if cert.key_type == 0:
        raise ValueError("key type not supported")
    # a key the signature check can use (RSA size and exponent, a point on
    # the curve): probed with an empty signature, which never verifies
    alg = x509.ECDSA_SHA256 if cert.key_type == x509.KEY_P256 else x509.RSA_SHA256
    chain.verify_digest(cert, alg, bytes(32), b"")  # ChainError for a bad key
    if cert.key_usage >= 0 and not cert.key_usage & x509.KU_DIGITAL_SIGNATURE:
        raise ValueError("keyUsage without digitalSignature")
    roots = _roots(flash_dir)
    if not roots:
        raise ValueError("no ManufacturerRootCertificate installed")
    chain.verify_chain([cert], roots, clock.now(), 1, pause)
    return der


def _roots(flash_dir):
    from mpocpp.security import store
    from mpocpp.security import x509
    from mpocpp.util import fsutil
    base = store.folder(flash_dir) + "/"
    out = []
    for name in store.names(flash_dir, store.MFR):
        try:
            out.append(x509.Certificate(fsutil.read(base + name) or b""))
        except ValueError as e:
            log.error(_TAG, "%s: unreadable certificate: %s", name, e)
    return out


class Signature:
    # The signing certificate (DER) and the signature of one firmware file.
    def __init__(self, der, sig, emit, pause):
        self._der = der
        self._sig = sig
        self._emit = emit
        self._pause = pause

    async def check(self, path, buf):
        # The firmware job's check: SHA-256 of the file at path, read through buf
        # with the loop served between pieces, then the signature: ECDSA
        # P-256 for an EC key; RSASSA-PSS or PKCS#1 v1.5 for an RSA key.
        # -> True when it verifies; False after the InvalidFirmwareSignature
        # event.
        import hashlib
        h = hashlib.sha256()
        mv = memoryview(buf)
        with open(path, "rb") as f:
            while True:
                n = f.readinto(buf)
                if not n:
                    break
                h.update(mv[:n])
                await asyncio.sleep_ms(0)
        try:
            why = _verify(self._der, h.digest(), self._sig, self._pause)
        finally:
            modules.release_all(_CRYPTO)
        if why:
            log.warn(_TAG, "firmware signature: %s", why)
            self._emit("InvalidFirmwareSignature", why, True)
            return False
        return True


def _verify(der, digest, sig, pause):
    # -> None when sig is a signature over digest by der's key, else why not
    from mpocpp.security import x509
    from mpocpp.security import chain
    c = x509.Certificate(der)
    try:
        if c.key_type == x509.KEY_P256:
            ok = chain.verify_digest(c, x509.ECDSA_SHA256, digest, sig, -1, pause)
        else:
            ok = (chain.verify_digest(c, x509.RSA_PSS_SHA256, digest, sig)
                  or chain.verify_digest(c, x509.RSA_SHA256, digest, sig))
    except ValueError as e:  # ChainError: a key the algorithm refuses
        return str(e)
    return None if ok else "does not verify with the signing certificate"


def triggered(jobs):
    # The payload of an ExtendedTriggerMessage's SignedFirmwareStatusNotification
    # (jobs: transfer.jobs.Jobs): the last status sent, with its requestId;
    # Idle before any, and after Installed (L01.FR.28/29).
    p = jobs.signed
    if p is None or p["status"] == "Installed":
        return {"status": "Idle"}
    return dict(p)
