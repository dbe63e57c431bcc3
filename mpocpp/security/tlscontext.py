# The TLS context of a wss:// connect (protocol/link.py): the
# CentralSystemRootCertificates as trust anchors (the provisioned caCert and
# those installed with InstallCertificate: store.py) and, under
# SecurityProfile 3, the charge point certificate as the client certificate.
# Imported for the connect and released with the rest of the package.
import tls
from mpocpp.util import log
from mpocpp.security import store

_TAG = "link"


def make(flash_dir, profile, fallback):
    # fallback: the replaced root (AdditionalRootCertificateCheck) is trusted too.
    ssl = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
    roots = store.central_roots(flash_dir, fallback)
    for der in roots:
        ssl.load_verify_locations(der)
    if not roots:
        # No CA provisioned (SecurityProfile < 2): encrypted, unverified.
        log.warn(_TAG, "wss without a CA: server not verified")
        ssl.verify_mode = tls.CERT_NONE
    if profile >= 3:
        # Profile 3: the charge point certificate (CertificateSigned) is the
        # client certificate; no Basic auth then.
        cc = store.client_cert(flash_dir)
        if cc is None:
            log.warn(_TAG, "SecurityProfile 3 without a charge point certificate")
        else:
            _client_chain(ssl, cc)
    return ssl


def _client_chain(ssl, cc):
    # The client certificate with its intermediates as PEM, so that the
    # handshake sends them; an mbedTLS built without PEM parsing (the host's
    # 64-bit unix port) refuses that: the leaf alone then, as DER.
    if cc.chain is not None:
        try:
            ssl.load_cert_chain(cc.chain, cc.key)
            return
        except ValueError as e:
            log.warn(_TAG, "client certificate chain not loaded (%s): the leaf alone", e)
    ssl.load_cert_chain(cc.leaf, cc.key)
