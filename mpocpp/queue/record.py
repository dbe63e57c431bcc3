# What both record stores share (store_lfs.py, store_ring.py): the
# StoreFull error and the 12-byte record frame.
#
# Frame: magic 0xA5, flag (0xFF = live; the ring clears it to acknowledge),
# length u16 LE, sequence u32 LE, CRC-32 over bytes 2..7 and the data.
# Magic first and length before sequence: a torn frame header shows either
# erased bytes, a wrong magic, or a length of 0xFFxx (too long), so it is
# never mistaken for a valid record; a torn data part fails the CRC.
from micropython import const
import struct
from binascii import crc32

HDR = const(12)
MAGIC = const(0xA5)
LIVE = const(0xFF)


class StoreFull(Exception):
    pass


def pack(hdr, seq, data):
    # Fill the preallocated 12-byte hdr for a record of data with sequence seq.
    struct.pack_into("<BBHI", hdr, 0, MAGIC, LIVE, len(data), seq)
    struct.pack_into("<I", hdr, 8, crc32(data, crc32(memoryview(hdr)[2:8])))


def length(hdr, room):
    # Length of the record whose header is hdr, -1 when hdr is erased
    # (end of the log) or -2 when it is garbage or longer than room.
    if hdr[0] != MAGIC:
        for b in hdr:
            if b != 0xFF:
                return -2
        return -1
    n = hdr[2] | hdr[3] << 8
    return n if n <= room else -2


def seq(hdr):
    return struct.unpack_from("<I", hdr, 4)[0]


def crc_start(hdr):
    return crc32(memoryview(hdr)[2:8])


def crc_ok(hdr, crc):
    return struct.unpack_from("<I", hdr, 8)[0] == crc
