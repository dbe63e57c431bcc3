# PEM (RFC 7468): DER blocks <-> text. decode() returns every block with the
# label, in order (a certificate chain); text between blocks is ignored.
import binascii


def encode(der, label):
    b = binascii.b2a_base64(der)[:-1].decode()
    lines = [b[i:i + 64] for i in range(0, len(b), 64)]
    return "-----BEGIN %s-----\n%s\n-----END %s-----\n" % (label, "\n".join(lines), label)


def decode(text, label="CERTIFICATE"):
    begin = "-----BEGIN %s-----" % label
    end = "-----END %s-----" % label
    out = []
    i = text.find(begin)
    while i >= 0:
        i += len(begin)
        j = text.find(end, i)
        if j < 0:
            raise ValueError("PEM: no END line")
        body = "".join(text[i:j].split())
        try:
            der = binascii.a2b_base64(body)
        except ValueError:
            der = None
        # binascii skips stray characters: only canonical base64 passes
        if not der or binascii.b2a_base64(der)[:-1] != body.encode():
            raise ValueError("PEM: bad base64")
        out.append(der)
        i = text.find(begin, j + len(end))
    return out
