# Local authorization list and authorization cache, kept in flash files so
# that neither is ever loaded whole into RAM (format: docs/authorization.md).
#
# Both files hold fixed 48-byte records:
#   key 20 (idTag, ASCII lower-cased, UTF-8, NUL padded) | parentIdTag 20 (as
#   sent) | expiryDate u32 (unix s, 0 = none) | status u8 | kind u8 | aux u16
# List: records sorted by key, then a trailer with the list version, count
# and CRC: a lookup is a binary search of ~10 reads, and version and content
# change together by one rename.
# Cache: a header, then an append-only log (one record per put), compacted
# when it reaches twice the capacity. RAM holds an 8-byte index entry per
# cached tag: key hash, log position, valid-until.
import array
import os
import struct
from binascii import crc32
from micropython import const

from mpocpp.util import clock
from mpocpp.util import fsutil
from mpocpp.util import log

_TAG = "auth"
_REC = const(48)
_KEY = const(20)
_CHUNK_BITS = const(5)
_CHUNK = const(32)  # staged keys per block of 640 bytes
_EXP = const(40)  # record offsets
_ST = const(44)
_KIND = const(45)
_AUX = const(46)
_TRL = const(20)  # list trailer
_HDR = const(16)  # cache log header
_FMT = const(1)
_PUT = const(1)
_DEL = const(2)
_NONE = const(0xFFFF)  # no aux / free index slot
_FOREVER = const(0xFFFFFFFF)
_MAX_CACHE = const(16383)  # log positions (< 3 x capacity) fit a u16
_LIST_MAGIC = b"OALS"
_CACHE_MAGIC = b"OACL"
_TRL_FMT = "<4sBBHiII"  # magic, format, record size, 0, version, count, crc
_TAIL_FMT = "<20s20sIBBH"

STATUSES = ("Accepted", "Blocked", "Expired", "Invalid", "ConcurrentTx")


def valid(info, now):
    # Accepted and not expired. now=None: the clock is unknown, so the
    # expiry date cannot be checked.
    if not info or info.get("status") != "Accepted":
        return False
    exp = info.get("expiryDate")
    return exp is None or now is None or exp > now


def _now(now):
    if now is None and clock.valid():
        return clock.now()
    return now


def _tag_bytes(s):
    # CiString20 -> UTF-8 bytes, or None when it cannot be stored as a tag.
    if not isinstance(s, str):
        return None
    b = s.encode()
    if not 0 < len(b) <= _KEY or b.find(b"\x00") >= 0:
        return None
    return b


def _fields(info):
    # OCPP IdTagInfo JSON -> (status code, expiry u32, parent bytes) or None.
    if not isinstance(info, dict):
        return None
    st = info.get("status")
    if st not in STATUSES:
        return None
    exp = info.get("expiryDate")
    if exp is None:
        exp = 0
    else:
        from mpocpp.util import timeparse
        try:
            exp = timeparse.parse(exp)
        except (ValueError, TypeError):
            return None
        exp = 1 if exp < 1 else min(exp, _FOREVER)
    parent = info.get("parentIdTag")
    if parent is None:
        parent = b""
    else:
        parent = _tag_bytes(parent)
        if parent is None:
            return None
    return STATUSES.index(st) + 1, exp, parent


def _pack(buf, key, fields, kind, aux):
    # key: at least 20 bytes (longer is cut); fields None = no idTagInfo.
    if fields is None:
        struct.pack_into(_TAIL_FMT, buf, 0, key, b"", 0, 0, kind, aux)
    else:
        struct.pack_into(_TAIL_FMT, buf, 0, key, fields[2], fields[1],
                         fields[0], kind, aux)


def _u16(b, o):
    return b[o] | b[o + 1] << 8


def _set16(b, o, v):
    b[o] = v & 255
    b[o + 1] = v >> 8


def _hash(k):
    h = 0
    for i in range(_KEY):
        c = k[i]
        if not c:
            break
        h = (h * 31 + c) & 0xFFFF
    return h


def _expiry(r):
    return r[_EXP] | r[_EXP + 1] << 8 | r[_EXP + 2] << 16 | r[_EXP + 3] << 24


def _valid_until(r):
    # Record -> cache index value: valid while now < it (0: never valid).
    if r[_ST] != 1:
        return 0
    return _expiry(r) or _FOREVER


def _key(keys, i):
    # Key i of the staged keys: chunks of _CHUNK keys (small blocks, so that a
    # fragmented heap still finds room for them).
    o = (i & (_CHUNK - 1)) * _KEY
    return keys[i >> _CHUNK_BITS][o:o + _KEY]


def _sort(keys, n):
    # -> array of 0..n-1 ordered by the 20-byte keys in `keys` (Shell sort
    # over an index: no copy of the keys).
    order = array.array("H", range(n))
    gap = n >> 1
    while gap:
        for i in range(gap, n):
            t = order[i]
            kt = _key(keys, t)
            j = i
            while j >= gap:
                u = order[j - gap]
                if _key(keys, u) <= kt:
                    break
                order[j] = u
                j -= gap
            order[j] = t
        gap >>= 1
    return order


class AuthStore:
    def __init__(self, dir, list_max=1024, cache_max=256):
        if not 0 <= cache_max <= _MAX_CACHE:
            raise ValueError("cache_max")
        self.dir = dir
        self.list_max = list_max
        self.cache_max = cache_max
        self._lpath = dir + "/authlist.bin"
        self._cpath = dir + "/authcache.log"
        self._ver = 0
        self._cnt = 0
        self._rec = bytearray(_REC)  # record read from flash
        self._chg = bytearray(_REC)  # record to write while _rec is in use
        self._mk = memoryview(self._rec)[:_KEY]  # compared without copies
        self._mc = memoryview(self._chg)[:_KEY]
        self._k = bytearray(_KEY)  # key being looked up
        self._needle = bytearray(2)
        # Cache index, slot s: hash at _h[2s:2s+2] (searched with find),
        # log position (_NONE = free slot), valid-until.
        self._h = bytearray(2 * cache_max)
        self._p = array.array("H", bytearray(2 * cache_max))
        self._vu = array.array("I", bytearray(4 * cache_max))
        self._cache_reset()

    def mount(self):
        fsutil.makedirs(self.dir)
        # A temp file is an update cut short by a reset: the old file stands.
        for p in (self._lpath + ".tmp", self._lpath + ".in", self._cpath + ".tmp"):
            if fsutil.remove(p):
                log.warn(_TAG, "removed unfinished %s", p)
        self._mount_list()
        self._mount_cache()

    def _check_file(self, path, check, what):
        # check(f) on the open file: its result, None if there is no file,
        # False if it cannot be read.
        try:
            f = open(path, "rb")
        except OSError:
            return None
        try:
            return check(f)
        except (OSError, ValueError) as e:
            log.exc(_TAG, "%s unreadable", e, what)
            return False
        finally:
            f.close()

    def _set_key(self, id_tag):
        # Normalize into self._k; False if id_tag cannot be an idTag.
        b = _tag_bytes(id_tag)
        if b is None:
            return False
        b = b.lower()  # ASCII case folding, like MicroPython's str.lower()
        k = self._k
        n = len(b)
        k[:n] = b
        for i in range(n, _KEY):
            k[i] = 0
        return True

    def _info(self):
        # The record in self._rec as a lookup result (None if damaged).
        r = self._rec
        st = r[_ST]
        if not 0 < st <= len(STATUSES) or r[_KIND] != _PUT:
            log.error(_TAG, "damaged record")
            return None
        n = 0
        while n < _KEY and r[_KEY + n]:
            n += 1
        return {"status": STATUSES[st - 1],
                "expiryDate": _expiry(r) or None,
                "parentIdTag": bytes(r[_KEY:_KEY + n]).decode() if n else None}

    # -- local authorization list -------------------------------------

    def list_version(self):
        return self._ver

    def list_count(self):
        return self._cnt

    def _mount_list(self):
        self._ver = self._cnt = 0  # _check_list sets them when all is well
        if self._check_file(self._lpath, self._check_list, "list") is False:
            log.error(_TAG, "local list corrupt: cleared")
            fsutil.remove(self._lpath)

    def _check_list(self, f):
        size = f.seek(0, 2)
        if size < _TRL:
            return False
        f.seek(size - _TRL)
        magic, fmt, rs, _, ver, cnt, crc = struct.unpack(_TRL_FMT, f.read(_TRL))
        if magic != _LIST_MAGIC or fmt != _FMT or rs != _REC or ver <= 0 \
                or size != cnt * _REC + _TRL:
            return False
        f.seek(0)
        c = 0
        r = self._rec
        for _ in range(cnt):
            f.readinto(r)
            c = crc32(r, c)
        if c != crc:
            return False
        self._ver = ver
        self._cnt = cnt
        return True

    def _in_list(self):
        # Binary search for self._k; leaves the record in self._rec.
        if not self._cnt:
            return False
        lo = 0
        hi = self._cnt
        mk = self._mk
        k = self._k
        r = self._rec
        try:
            with open(self._lpath, "rb") as f:
                while lo < hi:
                    mid = (lo + hi) >> 1
                    f.seek(mid * _REC)
                    f.readinto(r)
                    if mk < k:
                        lo = mid + 1
                    elif mk == k:
                        return True
                    else:
                        hi = mid
        except OSError as e:
            log.exc(_TAG, "list read", e)
        return False

    def list_lookup(self, id_tag):
        if not self._cnt or not self._set_key(id_tag) or not self._in_list():
            return None
        return self._info()

    def list_update(self, version, update_type, entries):
        # SendLocalList. entries: any iterable of AuthorizationData dicts (a
        # list, or a generator reading them from a flash file one at a
        # time); each is checked and written to a staging file as it comes,
        # then sorted (an index over the keys) and merged with the old list
        # into the new file. -> Accepted, Failed or VersionMismatch.
        if type(version) is not int or version <= 0 \
                or update_type not in ("Full", "Differential"):
            log.warn(_TAG, "SendLocalList refused: version %r, %r", version, update_type)
            return "Failed"
        full = update_type == "Full"
        if not full and version <= self._ver:
            return "VersionMismatch"
        stage = self._lpath + ".in"
        tmp = self._lpath + ".tmp"
        st = "Failed"
        try:
            st = self._update(stage, tmp, version, entries, full)
        except OSError as e:
            log.exc(_TAG, "list write failed", e)
        if st != "Accepted":
            fsutil.remove(tmp)
        fsutil.remove(stage)
        return st

    def _update(self, stage, tmp, version, entries, full):
        try:
            keys, n = self._stage(stage, entries, full)
        except ValueError as e:  # a bad entry (or a bad stream)
            log.warn(_TAG, "SendLocalList refused: %s", e)
            return "Failed"
        order = _sort(keys, n)
        for i in range(1, n):
            if _key(keys, order[i]) == _key(keys, order[i - 1]):
                log.warn(_TAG, "duplicate idTag in list")
                return "Failed"
        keys = None
        with open(stage, "rb") as chg:
            cnt = self._write_list(tmp, version, chg, order, full)
        if cnt is None:
            log.warn(_TAG, "list would exceed %d entries", self.list_max)
            return "Failed"
        os.rename(tmp, self._lpath)
        self._ver = version
        self._cnt = cnt
        log.info(_TAG, "local list v%d: %d entries", version, cnt)
        with open(stage, "rb") as chg:
            self._cache_forget(chg, n)  # listed tags leave the cache
        return "Accepted"

    def _stage(self, path, entries, full):
        # Each entry packed into a record of the staging file; -> (keys, n):
        # the n 20-byte keys in arrival order, as memoryviews of _CHUNK keys.
        keys = []
        n = 0
        limit = self.list_max if full else _NONE - 1
        chg = self._chg
        with open(path, "wb") as f:
            for e in entries or ():
                tag = e.get("idTag") if isinstance(e, dict) else None
                b = _tag_bytes(tag)
                info = e.get("idTagInfo") if b is not None else None
                fields = None if info is None else _fields(info)
                if b is None or (info is None and full) or (info is not None and fields is None):
                    raise ValueError("bad entry %r" % (e,))
                n += 1
                if n > limit:
                    raise ValueError("more than %d entries" % limit)
                b = b.lower() + bytes(_KEY - len(b))
                i = (n - 1) & (_CHUNK - 1)
                if not i:
                    keys.append(memoryview(bytearray(_CHUNK * _KEY)))
                keys[-1][i * _KEY:i * _KEY + _KEY] = b
                _pack(chg, b, fields, _PUT if info is not None else _DEL, _NONE)
                f.write(chg)
        return keys, n

    def _write_list(self, tmp, version, chg, order, full):
        # Streams the new list into tmp: the sorted changes (records of the
        # staging file chg, in `order`) merged with the old file
        # (Differential). Returns the count, None if over list_max.
        old = None if full or not self._cnt else open(self._lpath, "rb")
        try:
            with open(tmp, "wb") as f:
                n, c = self._merge(f, old, chg, order)
                if n is None:
                    return None
                f.write(struct.pack(_TRL_FMT, _LIST_MAGIC, _FMT, _REC, 0,
                                    version, n, c))
            return n
        finally:
            if old:
                old.close()

    def _merge(self, f, old, stage, order):
        r = self._rec
        chg = self._chg
        mk = self._mk
        mc = self._mc
        left = self._cnt if old else 0  # old records not yet read
        have = False  # self._rec holds the next old record
        nch = len(order)
        n = c = j = 0
        if nch:
            stage.seek(order[0] * _REC)
            stage.readinto(chg)
        while have or left or j < nch:
            if left and not have:
                old.readinto(r)
                left -= 1
                have = True
            if have and (j == nch or mk < mc):
                out = r  # the old entry stays
                have = False
            else:
                if have and mk == mc:
                    have = False  # the old entry is replaced or deleted
                out = chg if chg[_KIND] == _PUT else None
                j += 1
            if out is not None:
                f.write(out)
                c = crc32(out, c)
                n += 1
                if n > self.list_max:
                    return None, 0
            if out is not r and j < nch:
                stage.seek(order[j] * _REC)
                stage.readinto(chg)
        return n, c

    # -- authorization cache ------------------------------------------

    def cache_count(self):
        return self._cn

    def _cache_reset(self):
        p = self._p
        for s in range(self.cache_max):
            p[s] = _NONE
        self._cn = 0  # cached tags
        self._nrec = 0  # records in the cache log (0: no log file)

    def _mount_cache(self):
        self._cache_reset()
        ok = self._check_file(self._cpath, self._replay, "cache")
        if ok is False:
            self._cache_reset()
            fsutil.remove(self._cpath)
        elif ok == "compact":
            self._try_compact()

    def _replay(self, f):
        # Rebuilds the index from the log. True, False (unusable: cleared) or
        # "compact" (a damaged tail was dropped and the log must be rewritten).
        size = f.seek(0, 2)
        f.seek(0)
        hdr = f.read(_HDR)
        if len(hdr) < _HDR or hdr[:4] != _CACHE_MAGIC or hdr[4] != _FMT \
                or hdr[5] != _REC:
            if size:
                log.error(_TAG, "cache log corrupt: cleared")
            return False
        # Puts compact at 2 x capacity, list updates may add a deletion per
        # cached tag first: more records than that are not ours.
        nrec = min((size - _HDR) // _REC, 3 * self.cache_max)
        slot_of = bytearray(2 * nrec)  # log position -> index slot + 1
        r = self._rec
        p = self._p
        for i in range(nrec):
            f.readinto(r)
            kind = r[_KIND]
            aux = _u16(r, _AUX)
            s = -1
            if aux != _NONE:
                s = _u16(slot_of, 2 * aux) - 1 if aux < i else -1
                if s < 0 or p[s] != aux:
                    break
            if kind == _DEL and s >= 0:
                p[s] = _NONE
                self._cn -= 1
            elif kind == _PUT and 0 < r[_ST] <= len(STATUSES) and r[0]:
                if s < 0:
                    s = self._free_slot()
                    if s < 0:
                        break
                    self._cn += 1
                self._set_slot(s, r, i)
                _set16(slot_of, 2 * i, s + 1)
            else:
                break
        else:
            self._nrec = nrec
            if size == _HDR + nrec * _REC:
                return True
            log.warn(_TAG, "cache log: torn tail dropped")
            return "compact"
        log.error(_TAG, "cache log damaged at record %d: rest dropped", i)
        self._nrec = i
        return "compact"

    def _free_slot(self):
        p = self._p
        for s in range(self.cache_max):
            if p[s] == _NONE:
                return s
        return -1

    def _set_slot(self, s, r, pos):
        h = _hash(r)
        self._h[2 * s] = h >> 8
        self._h[2 * s + 1] = h & 255
        self._p[s] = pos
        self._vu[s] = _valid_until(r)

    def _cache_find(self, f):
        # Index slot of self._k (record left in self._rec) or -1.
        h = _hash(self._k)
        nd = self._needle
        nd[0] = h >> 8
        nd[1] = h & 255
        hs = self._h
        p = self._p
        i = hs.find(nd)
        while i >= 0:
            if not i & 1 and p[i >> 1] != _NONE:
                f.seek(_HDR + p[i >> 1] * _REC)
                f.readinto(self._rec)
                if self._mk == self._k:
                    return i >> 1
            i = hs.find(nd, i + 1)
        return -1

    def _find_slot(self):
        if not self._cn:
            return -1
        with open(self._cpath, "rb") as f:
            return self._cache_find(f)

    def cache_lookup(self, id_tag, now=None):
        # The cached IdTagInfo; an Accepted entry past its expiryDate reads
        # "Expired" (spec 3.5.1), the flash record stays as received.
        if not self._cn or not self._set_key(id_tag):
            return None
        try:
            s = self._find_slot()
        except OSError as e:
            log.exc(_TAG, "cache read", e)
            return None
        if s < 0:
            return None
        info = self._info()
        now = _now(now)
        if info and info["status"] == "Accepted" and now is not None \
                and info["expiryDate"] is not None and info["expiryDate"] <= now:
            info["status"] = "Expired"
        return info

    def cache_put(self, id_tag, id_tag_info, now=None):
        # Stores an IdTagInfo from Authorize / Start- / StopTransaction.conf.
        # False if not stored: cache off, bad input, listed tag, flash error.
        if not self.cache_max:
            return False
        fields = _fields(id_tag_info)
        if fields is None or not self._set_key(id_tag):
            log.warn(_TAG, "not cached: %r %r", id_tag, id_tag_info)
            return False
        if self._in_list():
            return False  # list beats cache; listed tags are never cached
        try:
            s = self._find_slot()
        except OSError as e:
            log.exc(_TAG, "cache read", e)
            return False
        new = s < 0
        if s >= 0:
            aux = self._p[s]  # the tag's previous record is superseded
        elif self._cn < self.cache_max:
            s = self._free_slot()
            aux = _NONE
        else:
            s = self._victim(_now(now))
            aux = self._p[s]  # the evicted tag's record is superseded
            new = False
        _pack(self._chg, self._k, fields, _PUT, aux)
        if not self._append(self._chg):
            return False
        self._set_slot(s, self._chg, self._nrec - 1)
        if new:
            self._cn += 1
        self._maybe_compact()
        return True

    def _victim(self, now):
        # Oldest NOT-valid entry, else the oldest valid one (spec 3.5.1).
        # Age is the last update from the Central System: lookups do not
        # write to flash.
        best = -1
        best_p = 0x10000
        best_bad = False
        p = self._p
        vu = self._vu
        for s in range(self.cache_max):
            ps = p[s]
            if ps == _NONE:
                continue
            bad = vu[s] == 0 if now is None else vu[s] <= now
            if (bad and not best_bad) or (bad == best_bad and ps < best_p):
                best = s
                best_p = ps
                best_bad = bad
        return best

    def _append(self, rec):
        # One record at the end of the log (a new log gets its header).
        try:
            if self._nrec:
                with open(self._cpath, "ab") as f:
                    f.write(rec)
            else:
                with open(self._cpath, "wb") as f:
                    f.write(self._header())
                    f.write(rec)
            self._nrec += 1
            return True
        except OSError as e:
            log.exc(_TAG, "cache write failed", e)
        # The log may end in a partial record now: rewrite it from the index.
        self._try_compact()
        return False

    def _header(self):
        h = bytearray(_HDR)
        h[:4] = _CACHE_MAGIC
        h[4] = _FMT
        h[5] = _REC
        return h

    def _cache_forget(self, stage, n):
        # Appends a deletion for each upserted tag (records of the staging
        # file) that the cache holds.
        if not self._cn:
            return
        gone = []
        chg = self._chg
        try:
            with open(self._cpath, "rb") as f:
                for _ in range(n):
                    stage.readinto(chg)
                    if chg[_KIND] == _PUT:
                        self._k[:] = self._mc
                        s = self._cache_find(f)
                        if s >= 0:
                            gone.append(s)
        except OSError as e:
            log.exc(_TAG, "cache read", e)
            return
        for s in gone:
            _pack(self._chg, b"", None, _DEL, self._p[s])
            if not self._append(self._chg):
                return
            self._p[s] = _NONE
            self._cn -= 1
        self._maybe_compact()

    def _maybe_compact(self):
        if self._nrec >= 2 * self.cache_max:
            self._try_compact()

    def _try_compact(self):
        try:
            self._compact()
        except OSError as e:
            log.exc(_TAG, "cache compaction failed: cleared", e)
            fsutil.remove(self._cpath + ".tmp")
            self.cache_clear()

    def _compact(self):
        # Rewrites the live records, oldest first, into a new log.
        nrec = self._nrec
        p = self._p
        live = bytearray(2 * nrec)  # log position -> index slot + 1
        for s in range(self.cache_max):
            if p[s] != _NONE:
                _set16(live, 2 * p[s], s + 1)
        tmp = self._cpath + ".tmp"
        r = self._rec
        with open(self._cpath, "rb") as old, open(tmp, "wb") as f:
            f.write(self._header())
            old.seek(_HDR)
            for i in range(nrec):
                old.readinto(r)
                if _u16(live, 2 * i):
                    _set16(r, _AUX, _NONE)
                    f.write(r)
        os.rename(tmp, self._cpath)
        j = 0
        for i in range(nrec):
            s = _u16(live, 2 * i)
            if s:
                p[s - 1] = j
                j += 1
        self._nrec = j

    def cache_clear(self):
        # ClearCache: one file removal (atomic on littlefs).
        self._cache_reset()
        if fsutil.remove(self._cpath) or not fsutil.exists(self._cpath):
            return True
        log.error(_TAG, "cache clear failed")
        return False
