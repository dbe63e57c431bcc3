"""Benchmark of the security crypto (mpocpp/security: keys, CSR, signatures,
certificates).

usage: .venv/bin/python bench/bench_crypto.py [--quick] [--only op,op]

The modules run as .mpy files made by tools/build_mpy.py for the rp2 board
(bytecode is the same for every port), on the 64-bit unix port from
PyPI and on the 32-bit unix port (MICROPYTHON32, default
/work/shared/targets/unix32/micropython, skipped if absent). For each
operation: the median time of N runs, and the smallest GC heap
(-X heapsize, found by bisection) in which a fresh interpreter imports the
modules the operation needs and runs it, minus the smallest heap of the same
script with only its inputs read: what a message handler adds to the heap,
module code included. With RP2040JS_DIR=<a directory where `npm install rp2040js@1.4.1`
was run>, the timings are also taken on the emulated Raspberry Pi Pico
(RP2040 at 125 MHz, about a minute of wall time).
"""
import datetime
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "host_tests"))

from harness import MICROPYTHON  # noqa: E402

MP32 = os.environ.get("MICROPYTHON32", "/work/shared/targets/unix32/micropython")
RP2 = os.environ.get("RP2_TARGETS", "/work/shared/targets/rp2")
RP2040JS = os.environ.get("RP2040JS_DIR")

# The signature check of operations/signedfirmware.py (Signature.check):
# the file hashed through one 2 KiB buffer, then the certificate parsed and
# the signature verified.
FW_CHECK = """import hashlib
der = rd('%s'); s = rd('%s'); buf = bytearray(2048); mv = memoryview(buf)
try:
    open('fw').close()
except OSError:  # on the Pico: written there, not sent through the REPL
    with open('fw', 'wb') as f:
        for j in range(0, FW_SIZE, 1024):
            f.write(bytes(i * 7 & 0xFF for i in range(j, j + 1024)))
def fwcheck(alg):
    h = hashlib.sha256()
    with open('fw', 'rb') as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            h.update(mv[:n])
    return chain.verify_digest(x509.Certificate(der), alg, h.digest(), s)
"""

# name -> (label, modules, setup, operation); the files of make_data() are in
# the current directory; setup runs outside the measured part.
OPS = {
    "keygen": ("P-256 key generation (scalar + public point)", "eckey", "",
               "d = eckey.generate(); pub = eckey.public(d)"),
    "csr": ("CSR, PEM (sign + DER + PEM; public key given)", "eckey, csr",
            "d = int.from_bytes(rd('d'), 'big'); pub = rd('pub')",
            "r = csr.build_pem(d, 'Bench CPO', 'CP-000001', pub)"),
    "sign": ("ECDSA P-256 sign (hedged RFC 6979)", "eckey",
             "d = int.from_bytes(rd('d'), 'big'); h = rd('digest')", "r = eckey.sign(d, h)"),
    "verify": ("ECDSA P-256 verify", "p256",
               "k = rd('ecpub'); h = rd('digest'); s = rd('ecsig')",
               "assert p256.verify(k, h, s)"),
    "rsa": ("RSA-2048 PKCS#1 v1.5 verify (e = 65537)", "rsa",
            "n = rd('n'); h = rd('digest'); s = rd('rsasig')",
            "assert rsa.verify(n, 65537, h, s)"),
    "pss": ("RSA-2048 PSS verify (e = 65537, salt 32, length recovered)", "rsa",
            "n = rd('n'); h = rd('digest'); s = rd('psssig')",
            "assert rsa.verify_pss(n, 65537, h, s)"),
    "parse": ("parse a certificate (P-256 leaf, %d bytes)", "x509",
              "b = rd('leaf')", "c = x509.Certificate(b)"),
    "chain_ec": ("PEM chain of 3 P-256 certificates: decode, parse, check up to the root",
                 "pem, x509, chain", "t = rd('chain_ec').decode(); root = rd('root_ec')",
                 ("c = [x509.Certificate(x) for x in pem.decode(t)]; "
                  "chain.verify_chain(c, [x509.Certificate(root)], NOW)")),
    "chain_rsa": ("same, 3 RSA-2048 certificates", "pem, x509, chain",
                  "t = rd('chain_rsa').decode(); root = rd('root_rsa')",
                  ("c = [x509.Certificate(x) for x in pem.decode(t)]; "
                   "chain.verify_chain(c, [x509.Certificate(root)], NOW)")),
    # what operations/signedfirmware.py does for a SignedUpdateFirmware: the
    # signing certificate before the answer, the signature after the download
    "fwcert": ("firmware signing certificate (PEM, P-256) against a manufacturer root",
               "pem, x509, chain",
               "t = rd('fw_cert').decode(); root = rd('root_mf')",
               ("c = x509.Certificate(bytes(pem.decode(t)[0])); "
                "chain.verify_chain([c], [x509.Certificate(root)], NOW, 1)")),
    "fwsig": ("firmware signature: SHA-256 of 128 KiB (2 KiB reads) + P-256 verify",
              "x509, chain", FW_CHECK % ("fw_cert_der", "fw_ecsig"),
              "assert fwcheck(x509.ECDSA_SHA256)"),
    "fwsig_rsa": ("same, RSA-2048 PSS signing key", "x509, chain",
                  FW_CHECK % ("fw_rsa_der", "fw_psssig"),
                  "assert fwcheck(x509.RSA_PSS_SHA256)"),
    # what operations/certsigning.py does: SignCertificate's key, CSR and the
    # pending key's DER; CertificateSigned's check of a leaf issued by a root
    # against that root and the pending key
    "sign_certificate": ("SignCertificate: key pair, CSR (PEM), private key DER", "eckey, csr",
                         "",
                         ("d = eckey.generate(); pub = eckey.public(d); "
                          "r = csr.build_pem(d, 'Bench CPO', 'CP-000001', pub); "
                          "k = eckey.private_der(d, pub)")),
    "certificate_signed": ("CertificateSigned: P-256 leaf PEM, check to the root, key match",
                           "pem, x509, chain, eckey",
                           "t = rd('cp_chain').decode(); root = rd('cp_root'); k = rd('cp_key')",
                           ("c = [x509.Certificate(x) for x in pem.decode(t)]; "
                            "chain.verify_chain(c, [x509.Certificate(root)], NOW); "
                            "pk = []; eckey.load_private(k, pk); "
                            "assert bytes(c[0].key_bits) == pk[0]")),
}

PRELUDE = """import gc, time
def rd(n):
    with open(n, 'rb') as f:
        return f.read()
NOW = %d
FW_SIZE = 131072
"""
FW_SIZE = 128 * 1024


def make_data(d):
    """Keys, signatures and certificates made with `cryptography`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
    from cryptography.x509.oid import NameOID
    t0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Bench CPO"),
                          x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def cert(subject, issuer, pub, key, ca):
        b = (x509.CertificateBuilder().subject_name(name(subject)).issuer_name(name(issuer))
             .public_key(pub).serial_number(x509.random_serial_number())
             .not_valid_before(t0).not_valid_after(t0 + datetime.timedelta(days=3650))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
             .add_extension(x509.KeyUsage(
                 digital_signature=not ca, key_cert_sign=ca, crl_sign=ca, content_commitment=False,
                 key_encipherment=False, data_encipherment=False, key_agreement=False,
                 encipher_only=False, decipher_only=False), critical=True))
        return b.sign(key, hashes.SHA256())

    def chain(gen):
        rk, ik, lk = gen(), gen(), gen()
        root = cert("Bench Root CA", "Bench Root CA", rk.public_key(), rk, True)
        inter = cert("Bench Sub CA", "Bench Root CA", ik.public_key(), rk, True)
        leaf = cert("CP-000001", "Bench Sub CA", lk.public_key(), ik, False)
        pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (leaf, inter, root))
        return leaf, pem, root.public_bytes(serialization.Encoding.DER), lk

    files = {}
    leaf, files["chain_ec"], files["root_ec"], lk = chain(
        lambda: ec.generate_private_key(ec.SECP256R1()))
    files["leaf"] = leaf.public_bytes(serialization.Encoding.DER)
    _, files["chain_rsa"], files["root_rsa"], rk = chain(
        lambda: rsa.generate_private_key(65537, 2048))
    digest = hashlib.sha256(b"benchmark").digest()
    files["digest"] = digest
    files["ecsig"] = lk.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
    files["ecpub"] = lk.public_key().public_bytes(serialization.Encoding.X962,
                                                  serialization.PublicFormat.UncompressedPoint)
    files["rsasig"] = rk.sign(digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))
    files["psssig"] = rk.sign(digest, padding.PSS(padding.MGF1(hashes.SHA256()), 32),
                              utils.Prehashed(hashes.SHA256()))
    files["n"] = rk.public_key().public_numbers().n.to_bytes(256, "big")
    # signed firmware: signing certificates issued by a manufacturer root
    # (no intermediate, L01), a 128 KiB file signed with each
    mk = ec.generate_private_key(ec.SECP256R1())
    mroot = cert("Bench Manufacturer", "Bench Manufacturer", mk.public_key(), mk, True)
    files["root_mf"] = mroot.public_bytes(serialization.Encoding.DER)
    fk = ec.generate_private_key(ec.SECP256R1())
    fc = cert("Firmware signing", "Bench Manufacturer", fk.public_key(), mk, False)
    files["fw_cert"] = fc.public_bytes(serialization.Encoding.PEM)
    files["fw_cert_der"] = fc.public_bytes(serialization.Encoding.DER)
    fr = rsa.generate_private_key(65537, 2048)
    files["fw_rsa_der"] = cert("Firmware signing RSA", "Bench Manufacturer", fr.public_key(), mk,
                               False).public_bytes(serialization.Encoding.DER)
    fw = bytes(i * 7 & 0xFF for i in range(FW_SIZE))  # as FW_CHECK writes it
    files["fw"] = fw
    files["fw_ecsig"] = fk.sign(fw, ec.ECDSA(hashes.SHA256()))
    files["fw_psssig"] = fr.sign(fw, padding.PSS(padding.MGF1(hashes.SHA256()), 32),
                                 hashes.SHA256())
    files["d"] = lk.private_numbers().private_value.to_bytes(32, "big")
    files["pub"] = files["ecpub"]
    ck, cr = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    croot = cert("Bench CPO Root", "Bench CPO Root", cr.public_key(), cr, True)
    cleaf = cert("CP-000001", "Bench CPO Root", ck.public_key(), cr, False)
    files["cp_chain"] = cleaf.public_bytes(serialization.Encoding.PEM)
    files["cp_root"] = croot.public_bytes(serialization.Encoding.DER)
    files["cp_key"] = ck.private_bytes(serialization.Encoding.DER,
                                       serialization.PrivateFormat.TraditionalOpenSSL,
                                       serialization.NoEncryption())
    for k, v in files.items():
        with open(os.path.join(d, k), "wb") as f:
            f.write(v)
    return int((t0 + datetime.timedelta(days=1)).timestamp()), len(files["leaf"])


def compile_mpy(out):
    """The security package as tools/build_mpy.py builds it for a board."""
    tmp = out + "-build"
    subprocess.run([sys.executable, os.path.join(ROOT, "tools", "build_mpy.py"), "--board", "rp2",
                    "--out", tmp, "--quiet"], check=True)
    os.makedirs(os.path.join(out, "mpocpp"))
    shutil.copy(os.path.join(tmp, "mpocpp", "__init__.mpy"), os.path.join(out, "mpocpp"))
    shutil.copytree(os.path.join(tmp, "mpocpp", "security"),
                    os.path.join(out, "mpocpp", "security"))
    shutil.rmtree(tmp)


def run(mp, d, script, heap):
    with open(os.path.join(d, "s.py"), "w") as f:
        f.write(script)
    env = dict(os.environ, MICROPYPATH=".frozen:" + d)
    return subprocess.run([mp, "-X", "heapsize=%d" % heap, "s.py"], cwd=d, env=env,
                          capture_output=True, text=True, timeout=600)


def script(now, op, reps=0, run_it=True):
    # reps > 0: timing (imports first, then reps runs, one time per line);
    # run_it False: the inputs only (the baseline of the heap figure)
    label, mods, setup, code = OPS[op]
    s = PRELUDE % now + setup + "\n"
    if reps:
        s += "from mpocpp.security import %s\n" % mods
        s += "for _ in range(%d):\n    _t0 = time.ticks_us()\n    %s\n" % (reps, code)
        s += "    print('T', time.ticks_diff(time.ticks_us(), _t0))\n"
    elif run_it:
        s += "from mpocpp.security import %s\n%s\n" % (mods, code)
    return s + "print('OK')\n"


def min_heap(mp, d, text):
    """Smallest -X heapsize (bytes, 64-byte steps) in which text prints OK."""
    lo, hi = 1024, 1 << 20
    assert "OK" in run(mp, d, text, hi).stdout, run(mp, d, text, hi).stderr
    while hi - lo > 64:
        mid = (lo + hi) // 2 // 64 * 64
        if "OK" in run(mp, d, text, mid).stdout:
            hi = mid
        else:
            lo = mid
    return hi


def module_heap(mp, d, now):
    """GC heap held by the imported modules (all of them, after a collection)."""
    s = (PRELUDE % now + "gc.collect(); m = gc.mem_alloc()\n"
         "from mpocpp.security import der, pem, x509, chain, rsa, p256, eckey, csr\n"
         "gc.collect(); print('M', gc.mem_alloc() - m)\nprint('OK')\n")
    p = run(mp, d, s, 1 << 20)
    return int(p.stdout.split()[1])


def measure(mp, d, now, reps):
    out = {}
    bases = []
    for op in OPS:
        p = run(mp, d, script(now, op, reps), 1 << 20)
        ts = [int(line.split()[1]) for line in p.stdout.splitlines() if line.startswith("T ")]
        assert len(ts) == reps, p.stdout + p.stderr
        bases.append(min_heap(mp, d, script(now, op, run_it=False)))
        out[op] = (statistics.median(ts) / 1000, min_heap(mp, d, script(now, op)) - bases[-1])
    return out, min(bases), module_heap(mp, d, now)


PICO_INSTALL = """import os
def mk(p):
    try:
        os.mkdir(p)
    except OSError:
        pass
mk('/lib'); mk('/lib/mpocpp'); mk('/lib/mpocpp/security'); mk('/data')
"""


def pico(d, now, reps):
    """The timings on the emulated Pico: the .mpy files and the data are
    written to its filesystem through the raw REPL, then one script times
    every operation."""
    work = tempfile.mkdtemp(prefix="bench_crypto_pico_")
    try:
        for f in ("run-pico.mjs", "bootrom-b1.bin"):
            shutil.copy(os.path.join(RP2, f), os.path.join(RP2040JS, f))
        lines = [PICO_INSTALL]
        for base, _, names in os.walk(d):
            for n in names:
                src = os.path.join(base, n)
                rel = os.path.relpath(src, d)
                if rel in ("s.py", "fw"):  # fw: made by the script on the Pico
                    continue
                dst = ("/lib/" + rel) if rel.startswith("mpocpp") else "/data/" + rel
                with open(src, "rb") as f:
                    lines.append("with open(%r, 'wb') as f:\n    f.write(bytes.fromhex(%r))"
                                 % (dst, f.read().hex()))
        with open(os.path.join(work, "install.py"), "w") as f:
            f.write("\n".join(lines) + "\n")
        s = ["import os\nos.chdir('/data')\n" + PRELUDE % now,
             ("gc.collect(); m0 = gc.mem_alloc()\n"
              "from mpocpp.security import der, pem, x509, chain, rsa, p256, eckey, csr\n"
              "gc.collect(); print('M', gc.mem_alloc() - m0)\n")]
        for op, (_, mods, setup, code) in OPS.items():
            s.append(setup + "\n")
            s.append("for _ in range(%d):\n    _t0 = time.ticks_us()\n    %s\n"
                     "    print('T', %r, time.ticks_diff(time.ticks_us(), _t0))\n"
                     % (reps, code, op))
        with open(os.path.join(work, "bench.py"), "w") as f:
            f.write("".join(s))
        p = subprocess.run(["node", "run-pico.mjs", "--image",
                            os.path.join(RP2, "micropython-RPI_PICO-v1.29.0-preview-585.uf2"),
                            "--quiet-boot", "--timeout", "1800",
                            "--exec", os.path.join(work, "install.py"),
                            "--exec", os.path.join(work, "bench.py")],
                           cwd=RP2040JS, capture_output=True, text=True, timeout=3600)
        times, mods = {}, None
        for line in p.stdout.splitlines():
            w = line.split()
            if w[:1] == ["T"]:
                times.setdefault(w[1], []).append(int(w[2]))
            elif w[:1] == ["M"]:
                mods = int(w[1])
        if len(times) != len(OPS):
            sys.stderr.write(p.stdout[-3000:] + p.stderr[-3000:])
            return None, None
        return {k: statistics.median(v) / 1000 for k, v in times.items()}, mods
    finally:
        shutil.rmtree(work)


def main():
    quick = "--quick" in sys.argv
    if "--only" in sys.argv:  # a few operations (names of OPS), e.g. after a change
        keep = sys.argv[sys.argv.index("--only") + 1].split(",")
        for op in list(OPS):
            if op not in keep:
                del OPS[op]
    reps = 5 if quick else 21
    d = tempfile.mkdtemp(prefix="bench_crypto_")
    try:
        now, leaf_len = make_data(d)
        compile_mpy(d)
        ports = [("unix 64-bit", MICROPYTHON)]
        if os.path.exists(MP32):
            ports.append(("unix 32-bit", MP32))
        res = [(name,) + measure(mp, d, now, reps) for name, mp in ports]
        pico_t = pico_m = None
        if RP2040JS:
            pico_t, pico_m = pico(d, now, 3 if quick else 5)
    finally:
        shutil.rmtree(d)
    print("## Security crypto (mpocpp/security)\n")
    print("The modules as .mpy files. Time: median of %d runs. Heap: smallest `-X heapsize` "
          "in which a fresh interpreter imports what the operation needs and runs it, minus the "
          "smallest for the same script with only the inputs read (%s and up): module code "
          "and the operation's peak together, what a message handler adds while it runs. "
          "Data made with `cryptography`.%s\n"
          % (reps, ", ".join("%s %.1f KiB" % (r[0], r[2] / 1024) for r in res),
             "" if RP2040JS else " Emulated Pico not run (set RP2040JS_DIR)."))
    head = "| operation |" + "".join(" %s ms | %s heap KiB |" % (r[0], r[0]) for r in res)
    sep = "|---|" + "---:|---:|" * len(res)
    if pico_t:
        head += " Pico (RP2040 125 MHz, emulated) ms |"
        sep += "---:|"
    print(head)
    print(sep)
    for op, (label, _, _, _) in OPS.items():
        row = "| %s |" % (label % leaf_len if "%d" in label else label)
        for r in res:
            t, h = r[1][op]
            row += " %.1f | %.1f |" % (t, h / 1024)
        if pico_t:
            row += " %.0f |" % pico_t[op]
        print(row)
    print("| all eight modules imported (GC heap held) |" +
          "".join(" | %.1f |" % (r[3] / 1024) for r in res) + (" %.1f KiB |" % (pico_m / 1024)
                                                             if pico_t else ""))


if __name__ == "__main__":
    main()
