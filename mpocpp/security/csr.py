# PKCS#10 CertificationRequest (RFC 2986) for the charger's P-256 key,
# signed with ecdsa-with-SHA256; subject O = CpoName, CN = the charge point's
# identity (whitepaper A02.FR.13, A00.FR.511).
import hashlib
from micropython import const
from .der import tlv, seq, SET, OID, BIT_STRING
from . import eckey, pem

# AlgorithmIdentifier { id-ecPublicKey, prime256v1 }
_EC_P256 = const(b"\x30\x13\x06\x07\x2a\x86\x48\xce\x3d\x02\x01"
                 b"\x06\x08\x2a\x86\x48\xce\x3d\x03\x01\x07")
# AlgorithmIdentifier { ecdsa-with-SHA256 } (no parameters)
_ECDSA_SHA256 = const(b"\x30\x0a\x06\x08\x2a\x86\x48\xce\x3d\x04\x03\x02")
_OID_O = const(b"\x55\x04\x0a")
_OID_CN = const(b"\x55\x04\x03")


def _rdn(oid, text):
    if not 0 < len(text) <= 64:  # ub-organization-name, ub-common-name
        raise ValueError("CSR name length")
    return tlv(SET, seq(tlv(OID, oid), tlv(0x0C, text.encode())))  # UTF8String


def build(d, organization, common_name, pub=None, extra=None, pause=None):
    # DER of the request for private key d; pub = eckey.public(d) when the
    # caller has it (saves a scalar multiplication); extra as for eckey.sign
    info = seq(b"\x02\x01\x00",
               seq(_rdn(_OID_O, organization), _rdn(_OID_CN, common_name)),
               seq(_EC_P256, tlv(BIT_STRING, b"\x00" + (pub or eckey.public(d, pause)))),
               b"\xa0\x00")  # no attributes
    r, s = eckey.sign(d, hashlib.sha256(info).digest(), extra, pause)
    return seq(info, _ECDSA_SHA256, tlv(BIT_STRING, b"\x00" + eckey.encode_sig(r, s)))


def build_pem(d, organization, common_name, pub=None, pause=None):
    return pem.encode(build(d, organization, common_name, pub, None, pause),
                      "CERTIFICATE REQUEST")
