# The security whitepaper's certificate management (M03 to M05):
# InstallCertificate, GetInstalledCertificateIds and DeleteCertificate over
# the root certificates in flash (security/store.py). Certificates are
# identified by their CertificateHashData (x509.hash_data, SHA-256 only).
# A new CentralSystemRootCertificate is the link's trust anchor from the next
# wss:// connect on. Loaded for the CALL, released after.
from mpocpp.util import clock
from mpocpp.util import fsutil
from mpocpp.util import log
from mpocpp.security import store

_TAG = "certs"
_ACCEPTED = "Accepted"
_REJECTED = "Rejected"
_FAILED = "Failed"
_NOT_FOUND = "NotFound"


class Security:
    def __init__(self, cfg, changed, pause):
        # changed(what): a certificate was installed or deleted (the
        # security event ReconfigurationOfSecurityParameters); pause(): the
        # charger's safety work, called from inside the crypto.
        self._cfg = cfg
        self._changed = changed
        self._pause = pause

    # --- InstallCertificate (M05) ---
    def InstallCertificate(self, req):
        kind = req["certificateType"]
        from mpocpp.security import x509
        try:
            der = _parse_pem(req["certificate"])
            cert = x509.Certificate(der)
        except ValueError as e:
            log.warn(_TAG, "InstallCertificate %s: malformed: %s", kind, e)
            return {"status": _REJECTED}
        now = clock.now()
        if not cert.not_before <= now <= cert.not_after:
            log.warn(_TAG, "InstallCertificate %s: not valid now (%s)", kind, clock.iso(now))
            return {"status": _REJECTED}
        if cert.critical_unknown:
            log.warn(_TAG, "InstallCertificate %s: unknown critical extension", kind)
            return {"status": _REJECTED}
        d = self._cfg.dir
        entries = _entries(d, kind)
        mine = _hash(cert, _entries(d, None), None)
        for path, c in entries:
            if x509.same_hash_data(_hash(c, entries, path), mine):
                log.info(_TAG, "InstallCertificate %s: already installed", kind)
                return {"status": _ACCEPTED}
        count = len(_entries(d, None))
        limit = self._cfg.get("CertificateStoreMaxLength")
        replace = ()
        if kind == store.CENTRAL and self._cfg.get("AdditionalRootCertificateCheck"):
            replace = [e for e in entries if not _is_fallback(e[0])]
            if replace:
                from mpocpp.security import chain
                ok = False
                for path, old in replace:
                    try:
                        chain.verify_chain([cert], [old], now, 5, self._pause)
                        ok = True
                        break
                    except ValueError:
                        pass
                if not ok:
                    log.warn(_TAG, "InstallCertificate: not signed by the root it replaces "
                             "(AdditionalRootCertificateCheck)")
                    return {"status": _REJECTED}
                # the old fallback goes, the replaced root becomes the fallback
                count -= len(entries) - len(replace)
        if count >= limit:
            log.warn(_TAG, "InstallCertificate %s: store full (%d of %d)", kind, count, limit)
            return {"status": _REJECTED}
        try:
            fsutil.makedirs(store.folder(d))
            base = store.folder(d) + "/"
            if replace:
                for name in store.names(d, store.FALLBACK):
                    store.remove(base + name)
                for path, old in replace:
                    _demote(self._cfg, path, old, entries)
            prefix = store.PRIMARY if kind == store.CENTRAL else store.MFR
            name = store.next_name(d, prefix)
            if bytes(cert.issuer) != bytes(cert.subject):
                fsutil.write_atomic(base + name[:-4] + ".ikh", mine["issuerKeyHash"].encode())
            fsutil.write_atomic(base + name, der)
        except OSError as e:
            log.exc(_TAG, "InstallCertificate", e)
            return {"status": _FAILED}
        log.info(_TAG, "InstallCertificate %s: installed, serial %s", kind, mine["serialNumber"])
        self._changed("InstallCertificate " + kind)
        return {"status": _ACCEPTED}

    # --- GetInstalledCertificateIds (M03) ---
    def GetInstalledCertificateIds(self, req):
        kind = req["certificateType"]
        entries = _entries(self._cfg.dir, kind)
        if not entries:
            return {"status": _NOT_FOUND}
        return {"status": _ACCEPTED,
                "certificateHashData": [_hash(c, entries, p) for p, c in entries]}

    # --- DeleteCertificate (M04) ---
    def DeleteCertificate(self, req):
        want = req["certificateHashData"]
        if want["hashAlgorithm"] != "SHA256":
            log.info(_TAG, "DeleteCertificate: %s hashes are not kept", want["hashAlgorithm"])
            return {"status": _NOT_FOUND}
        from mpocpp.security import x509
        d = self._cfg.dir
        for kind in (store.CENTRAL, store.MANUFACTURER):
            entries = _entries(d, kind)
            for path, c in entries:
                if not x509.same_hash_data(_hash(c, entries, path), want):
                    continue
                if kind == store.CENTRAL and self._in_use(entries):
                    log.warn(_TAG, "DeleteCertificate: the CentralSystemRootCertificate in "
                             "use by SecurityProfile %d", self._cfg.get("SecurityProfile"))
                    return {"status": _FAILED}  # M04.FR.06
                try:
                    _remove(self._cfg, path)
                except OSError as e:
                    log.exc(_TAG, "DeleteCertificate", e)
                    return {"status": _FAILED}
                log.info(_TAG, "DeleteCertificate %s: serial %s deleted", kind,
                         want["serialNumber"])
                self._changed("DeleteCertificate " + kind)
                return {"status": _ACCEPTED}
        log.info(_TAG, "DeleteCertificate: serial %s not found", want["serialNumber"])
        return {"status": _NOT_FOUND}

    def _in_use(self, entries):
        # With TLS (SecurityProfile 2 or 3) the connection is verified with
        # one of the CentralSystemRootCertificates; which one the TLS stack
        # does not say, so the last one left is taken to be it.
        return self._cfg.get("SecurityProfile") >= 2 and len(entries) <= 1


def _parse_pem(text):
    # InstallCertificate.certificate: one PEM-encoded X.509 certificate.
    from mpocpp.security import pem
    blocks = pem.decode(text)
    if len(blocks) != 1:
        raise ValueError("%d PEM certificates, one expected" % len(blocks))
    return bytes(blocks[0])


def _is_fallback(path):
    return path.rsplit("/", 1)[-1].startswith(store.FALLBACK)


def _entries(d, kind):
    # [(path, x509.Certificate)] of one certificate type (None: both). A
    # file that does not parse any more is skipped with a log line.
    from mpocpp.security import x509
    paths = []
    if kind != store.MANUFACTURER:
        p = d + "/" + store.PROVISIONED
        if fsutil.exists(p):
            paths.append(p)
        base = store.folder(d) + "/"
        paths += [base + n for n in store.names(d, store.PRIMARY)]
        paths += [base + n for n in store.names(d, store.FALLBACK)]
    if kind != store.CENTRAL:
        base = store.folder(d) + "/"
        paths += [base + n for n in store.names(d, store.MFR)]
    out = []
    for p in paths:
        try:
            out.append((p, x509.Certificate(store.to_der(fsutil.read(p) or b""))))
        except ValueError as e:
            log.error(_TAG, "%s: unreadable certificate: %s", p, e)
    return out


def _hash(cert, entries, path):
    # CertificateHashData. The issuer's key for issuerKeyHash: the
    # certificate's own when it is self-issued (a root); else the one kept
    # at installation (path's .ikh), else an installed certificate whose
    # subject is its issuer, else (issuer unknown) its own.
    from mpocpp.security import x509
    issuer = cert
    ikh = None
    if bytes(cert.issuer) != bytes(cert.subject):
        if path is not None and not path.endswith("/" + store.PROVISIONED):
            ikh = fsutil.read(path[:-4] + ".ikh")
        if ikh is None:
            for p, c in entries:
                if bytes(c.subject) == bytes(cert.issuer):
                    issuer = c
                    break
    h = x509.hash_data(cert, issuer)
    if ikh:
        h["issuerKeyHash"] = ikh.decode()
    return h


def _demote(cfg, path, cert, entries):
    # AdditionalRootCertificateCheck: the replaced root becomes the fallback
    # (its hash data unchanged).
    d = cfg.dir
    base = store.folder(d) + "/" + store.next_name(d, store.FALLBACK)[:-4]
    if bytes(cert.issuer) != bytes(cert.subject):
        ikh = _hash(cert, entries, path)["issuerKeyHash"]
        fsutil.write_atomic(base + ".ikh", ikh.encode())
    fsutil.write_atomic(base + ".der", bytes(cert.der))
    _remove(cfg, path)


def _remove(cfg, path):
    if path.endswith("/" + store.PROVISIONED):
        cfg.settings["caCert"] = ""
        cfg.save()  # removes ca.crt
    else:
        store.remove(path)
