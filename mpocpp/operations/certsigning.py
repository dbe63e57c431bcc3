# The charge point certificate of the security whitepaper (A02, A03):
# SignCertificate and CertificateSigned. sign_certificate() makes a new P-256
# key pair, keeps the private key in flash as the pending key (cpkey.new,
# security/store.py) and sends SignCertificate with a CSR (O = CpoName, CN =
# the charge box identity). CertificateSigned checks the chain against the
# installed CentralSystemRootCertificates, the validity and that its key is
# the pending one, then installs the certificate with that key (cp.pem),
# SecurityProfile 3's TLS client certificate; anything else is Rejected with
# an InvalidChargePointCertificate security event. The key in use stays
# until a certificate for the pending key is installed.
# Loaded for the CALL (CertificateSigned) or for a signing (Charger.sign_certificate:
# ExtendedTriggerMessage SignChargePointCertificate, the renewal), released
# after. No private key is ever logged or sent.
import asyncio
from micropython import const
from mpocpp.util import clock
from mpocpp.util import fsutil
from mpocpp.util import log
from mpocpp.util import modules
from mpocpp.security import store

_TAG = "cpcert"
_ACCEPTED = "Accepted"
_REJECTED = "Rejected"
_INVALID = "InvalidChargePointCertificate"
_MONTH = const(2592000)  # A03.FR.02: renew when the certificate expires within a month
_SKEW = const(300)  # seconds a new certificate may start in the future


class CertificateSigning:
    def __init__(self, cfg, sender, security_event, try_certificate, pause):
        # sender: queue.sender.Sender (call_now); security_event(type,
        # tech_info): securityevents.SecurityEvents.emit; try_certificate(undo):
        # link.Link.try_security_profile (reconnect, undo() after failures);
        # pause(): the charger's safety work, called from inside the crypto
        self._cfg = cfg
        self._sender = sender
        self._event = security_event
        self._try = try_certificate
        self._pause = pause

    # --- SignCertificate (A02.FR.02/03, A03.FR.02/03) ---
    async def sign_certificate(self):
        # -> True when the CSMS accepted the SignCertificate. Without
        # CpoName (the use cases' prerequisite) nothing is done. The crypto
        # goes when it ends.
        try:
            return await self._sign()
        finally:
            modules.release_all("mpocpp.security")

    async def _sign(self):
        cfg = self._cfg
        org = cfg.get("CpoName")
        cn = cfg.settings.get("chargeBoxId") or ""
        if not org:
            log.warn(_TAG, "SignCertificate: CpoName not set")
            return False
        await asyncio.sleep_ms(0)  # a trigger's answer leaves first
        from mpocpp.security import eckey, csr
        # Each step blocks the loop (about a second each on an RP2040,
        # docs/benchmarks.md): the other tasks run in between, the safety
        # work inside (pause).
        d = eckey.generate()
        pub = eckey.public(d, self._pause)
        await asyncio.sleep_ms(0)
        path = store.folder(cfg.dir) + store.PENDING_KEY
        try:
            text = csr.build_pem(d, org, cn, pub, self._pause)
            fsutil.makedirs(store.folder(cfg.dir))
            fsutil.write_atomic(path, eckey.private_der(d, pub))
        except (ValueError, OSError) as e:  # a name the CSR cannot hold, flash
            log.warn(_TAG, "SignCertificate: %s", e)
            return False
        d = None
        from mpocpp.protocol.rpc import CallError, CallTimeout, Offline
        try:
            res = await self._sender.call_now("SignCertificate", {"csr": text})
        except Offline:
            log.warn(_TAG, "SignCertificate: offline")
            fsutil.remove(path)
            return False
        except (CallError, CallTimeout):
            # the CSMS may still have it: the pending key stays
            log.warn(_TAG, "SignCertificate: no answer")
            return False
        if res.get("status") != _ACCEPTED:
            log.warn(_TAG, "SignCertificate: %s", res.get("status"))
            fsutil.remove(path)
            return False
        log.info(_TAG, "SignCertificate accepted: waiting for CertificateSigned")
        return True

    async def renew(self):
        # A03: the certificate in use expires within a month (or none is
        # installed under SecurityProfile 3): a new key and SignCertificate.
        # Checked at each boot, so a CSR lost on the way is sent again.
        if not self._due():
            modules.release_all("mpocpp.security")
            return False
        log.info(_TAG, "charge point certificate due for renewal")
        return await self.sign_certificate()

    def _due(self):
        cfg = self._cfg
        cc = store.client_cert(cfg.dir)
        if cc is None:
            return cfg.get("SecurityProfile") >= 3
        from mpocpp.security import x509
        try:
            return x509.Certificate(cc.leaf).not_after - clock.now() <= _MONTH
        except ValueError:
            return True

    # --- CertificateSigned (A02.FR.06/07, A03.FR.06/07) ---
    def CertificateSigned(self, req):
        text = req["certificateChain"]
        try:
            why = self._check(text)
        except OSError as e:  # flash: not the certificate's fault
            log.exc(_TAG, "CertificateSigned", e)
            return {"status": _REJECTED}
        if why is not None:
            log.warn(_TAG, "CertificateSigned rejected: %s", why)
            self._event(_INVALID, why)
            return {"status": _REJECTED}
        log.info(_TAG, "CertificateSigned: charge point certificate installed")
        self._event("ReconfigurationOfSecurityParameters", "CertificateSigned")
        cfg = self._cfg
        if cfg.get("SecurityProfile") >= 3:
            # In use at once: a reconnect with it; if it cannot connect, the
            # previous one comes back (A02.FR.10)
            return {"status": _ACCEPTED}, _Trial(self._try, store.Restore(cfg.dir))
        return {"status": _ACCEPTED}

    def _check(self, text):
        # None when installed, else why not (no secret in it)
        cfg = self._cfg
        limit = cfg.get("CertificateSignedMaxChainSize")
        if len(text) > limit:
            return "chain of %d characters, CertificateSignedMaxChainSize %d" % (len(text), limit)
        base = store.folder(cfg.dir)
        key = fsutil.read(base + store.PENDING_KEY)
        if key is None:
            return "no pending key (no SignCertificate sent)"
        from mpocpp.security import pem, x509, chain, eckey
        try:
            certs = [x509.Certificate(bytes(b)) for b in pem.decode(text)]
        except ValueError as e:
            return "malformed: %s" % e
        if not certs:
            return "no certificate"
        roots = []
        for der in store.central_roots(cfg.dir):
            try:
                roots.append(x509.Certificate(der))
            except ValueError:
                pass
        leaf = certs[0]
        # A CA that stamps notBefore with its own "now" and a charger clock a
        # little behind (A02.FR.08): checked at notBefore when that is at
        # most _SKEW ahead, and used at once (the CSMS checks the time)
        now = clock.now()
        if now < leaf.not_before <= now + _SKEW:
            now = leaf.not_before
        try:
            chain.verify_chain(certs, roots, now, 5, self._pause)
        except ValueError as e:
            return "chain: %s" % e
        if leaf.cn != (cfg.settings.get("chargeBoxId") or "") or not leaf.o:
            return "subject is not O=<CPO>, CN=<charge box identity>"
        # the public key written with the pending key (private_der) saves a
        # scalar multiplication (about a second on an RP2040)
        pub = []
        d = eckey.load_private(key, pub)
        if leaf.key_type != x509.KEY_P256 or \
                bytes(leaf.key_bits) != (pub[0] or eckey.public(d, self._pause)):
            return "not the key of the CSR"
        d = None
        # The certificates as checked and the key, in one file (atomic)
        out = [pem.encode(c.der, "CERTIFICATE") for c in certs]
        out.append(pem.encode(key, store.KEY_LABEL))
        certs = roots = None
        path = base + store.CHARGE_POINT
        if cfg.get("SecurityProfile") >= 3 and fsutil.exists(path):
            import os
            os.rename(path, base + store.PREVIOUS)
        else:
            fsutil.remove(base + store.PREVIOUS)
        fsutil.write_atomic(path, "".join(out).encode())
        fsutil.remove(base + store.PENDING_KEY)
        return None


class _Trial:
    # CertificateSigned's follow-up under profile 3 (a bound object)
    def __init__(self, try_certificate, undo):
        self.try_certificate = try_certificate
        self.undo = undo

    def __call__(self):
        self.try_certificate(self.undo)
