# PEM (RFC 7468): DER blocks <-> text. decode() returns every block with the
# label, in order (a certificate chain); text between blocks is ignored.
# Decoded line by line (lines of a multiple of 4 characters, as 64-character
# PEM lines are) so that no copy of the whole block is made.
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
        out.append(_block(text, i, j))
        i = text.find(begin, j + len(end))
    return out


def _block(text, i, j):
    der = bytearray()
    last = False
    while i < j:
        k = text.find("\n", i, j)
        if k < 0:
            k = j
        line = text[i:k].strip()
        i = k + 1
        if not line:
            continue
        if last or len(line) & 3:
            raise ValueError("PEM: bad line")
        try:
            b = binascii.a2b_base64(line)
        except ValueError:
            raise ValueError("PEM: bad base64")
        # binascii skips stray characters: only canonical base64 passes
        if binascii.b2a_base64(b)[:-1] != line.encode():
            raise ValueError("PEM: bad base64")
        last = line[-1] == "="
        der += b
    if not der:
        raise ValueError("PEM: empty")
    return der
