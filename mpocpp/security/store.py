# The root certificates installed through InstallCertificate (security
# whitepaper M05), one DER file per certificate under <flash>/certs/:
#   cs<N>.der   a CentralSystemRootCertificate (the link's TLS trust anchors)
#   fb<N>.der   the CentralSystemRootCertificate a new one replaced while
#               AdditionalRootCertificateCheck is true: the fallback (M05.FR.11)
#   mf<N>.der   a ManufacturerRootCertificate (signed firmware)
#   <name>.ikh  beside a certificate that is not self-issued: the
#               issuerKeyHash of its CertificateHashData, as computed when it
#               was installed (its issuer may be deleted later; the hash the
#               central system was told must stay the same)
#   cp.pem      the charge point certificate (SecurityProfile 3's TLS client
#               certificate) as CertificateSigned brought it, followed by its
#               private key ("EC PRIVATE KEY", SEC 1): one file, written
#               atomically, so the two always match
#   cpold.pem   the one before, while under SecurityProfile 3 the new one
#               has not connected yet (A02.FR.10): put back if it cannot
#   cpkey.new   the private key (SEC 1 DER) of the last SignCertificate's CSR,
#               until its certificate arrives (operations/certsigning.py)
# Private keys are read here and in certsigning.py only, never logged or sent.
# The CA provisioned as caCert (ca.crt, model/keys.py) is a
# CentralSystemRootCertificate too: listed, counted and deletable like these.
# No state: the directory is the store. Imported by operations/security.py
# and, for a wss:// connect, by protocol/link.py.
from mpocpp.util import fsutil

CENTRAL = "CentralSystemRootCertificate"
MANUFACTURER = "ManufacturerRootCertificate"
PRIMARY = "cs"
FALLBACK = "fb"
MFR = "mf"
PROVISIONED = "ca.crt"  # the provisioned caCert, in the flash directory itself
CHARGE_POINT = "/cp.pem"
PREVIOUS = "/cpold.pem"
PENDING_KEY = "/cpkey.new"
KEY_LABEL = "EC PRIVATE KEY"


def folder(flash_dir):
    return flash_dir + "/certs"


def names(flash_dir, prefix):
    # The file names of one kind, in installation order.
    import os
    try:
        found = [n for n in os.listdir(folder(flash_dir))
                 if n.startswith(prefix) and n.endswith(".der")]
    except OSError:
        return []
    found.sort(key=_index)
    return found


def _index(name):
    try:
        return int(name[2:-4])
    except ValueError:
        return 0


def next_name(flash_dir, prefix):
    n = 0
    for p in (PRIMARY, FALLBACK, MFR):
        for name in names(flash_dir, p):
            n = max(n, _index(name) + 1)
    return "%s%d.der" % (prefix, n)


def to_der(data):
    # A certificate as stored: DER bytes, or PEM text or bytes (ca.crt).
    if isinstance(data, str):
        data = data.encode()
    if data[:5] != b"-----":
        return bytes(data)
    from mpocpp.security import pem
    blocks = pem.decode(data.decode())
    if not blocks:
        raise ValueError("no certificate in PEM")
    return bytes(blocks[0])


def central_roots(flash_dir, fallback=True):
    # DER of every CentralSystemRootCertificate for the TLS context: the
    # provisioned caCert first, then the installed ones, then the fallback.
    out = []
    data = fsutil.read(flash_dir + "/" + PROVISIONED)
    if data:
        try:
            out.append(to_der(data))
        except ValueError:
            pass
    base = folder(flash_dir) + "/"
    for name in names(flash_dir, PRIMARY) + (names(flash_dir, FALLBACK) if fallback else []):
        data = fsutil.read(base + name)
        if data:
            out.append(data)
    return out


def remove(path):
    # A certificate file and its .ikh
    fsutil.remove(path)
    fsutil.remove(path[:-4] + ".ikh")


def has_fallback(flash_dir):
    return bool(names(flash_dir, FALLBACK))


def drop_fallback(flash_dir):
    # M05.FR.12: connected with the new root, the old one goes.
    base = folder(flash_dir) + "/"
    for name in names(flash_dir, FALLBACK):
        remove(base + name)


class _ClientCert:
    # The installed charge point certificate: leaf (DER), key (SEC 1 DER),
    # and chain: the whole chain as PEM, leaf first, when CertificateSigned
    # brought intermediates (for the handshake to send them), else None.
    def __init__(self, leaf, key, chain):
        self.leaf = leaf
        self.key = key
        self.chain = chain


def client_cert(flash_dir):
    # SecurityProfile 3: the installed charge point certificate (a
    # _ClientCert), or None (none installed, or unreadable).
    b = folder(flash_dir)
    # cpold.pem alone: a power cut between the two steps of an installation
    data = fsutil.read(b + CHARGE_POINT) or fsutil.read(b + PREVIOUS)
    if not data:
        return None
    from mpocpp.security import pem
    try:
        text = data.decode()
        cert = pem.decode(text)
        key = pem.decode(text, KEY_LABEL)
    except ValueError:  # UnicodeError too
        return None
    if not cert or len(key) != 1:
        return None
    chain = None
    if len(cert) > 1:
        chain = "".join(pem.encode(c, "CERTIFICATE") for c in cert).encode()
    return _ClientCert(bytes(cert[0]), bytes(key[0]), chain)


class Restore:
    # Puts the previous charge point certificate back (link.py, when a new
    # one cannot connect under SecurityProfile 3): a bound object.
    def __init__(self, flash_dir):
        self.dir = flash_dir

    def __call__(self):
        import os
        b = folder(self.dir)
        try:
            os.rename(b + PREVIOUS, b + CHARGE_POINT)
        except OSError:
            pass
