#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Write the fuzzers' seed corpora (tests/fuzz/corpus/<fuzzer>/), well-formed
inputs from which libFuzzer mutates: a full vhost-user hand-shake with rings
that carry packets, rings with chains and bad entries, control-channel
requests. Run from anywhere; the files are committed."""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
MEM = 64 * 1024
UVA = 0x100000

# vhost-user requests
GET_FEATURES, SET_FEATURES, SET_OWNER, SET_MEM_TABLE = 1, 2, 3, 5
SET_VRING_NUM, SET_VRING_ADDR, SET_VRING_BASE, GET_VRING_BASE = 8, 9, 10, 11
SET_VRING_KICK, SET_VRING_CALL, SET_VRING_ERR = 12, 13, 14
GET_PROTOCOL_FEATURES, SET_PROTOCOL_FEATURES, GET_QUEUE_NUM = 15, 16, 17
SET_VRING_ENABLE, SET_STATUS, GET_STATUS = 18, 39, 40
V1, NEED_REPLY = 1, 1 << 3
F_VERSION_1, F_MRG, F_EVIDX, F_INORDER, F_PROTO = 32, 15, 29, 35, 30
DESC_NEXT, DESC_WRITE = 1, 2


def write(fuzzer, name, data):
    d = os.path.join(HERE, "corpus", fuzzer)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def rings(num, tx_pkts, rx_bufs, chain=False, bad=None):
    """Guest memory: ring q at q * 0x2000 (desc, avail +0x1000, used +0x1400);
    queue 0 is the frontend's rx (writable buffers), 1 its tx (packets).
    Trailing zeros are left out (the harness zeroes the rest)."""
    mem = bytearray(0x10000)
    # rx: writable buffers of 1 KiB at 0x4000
    for i in range(rx_bufs):
        struct.pack_into("<QIHH", mem, 0x0000 + 16 * i, 0x4000 + 0x400 * (i % 8), 0x400,
                         DESC_WRITE, 0)
        struct.pack_into("<H", mem, 0x1000 + 4 + 2 * i, i)
    struct.pack_into("<HH", mem, 0x1000, 0, rx_bufs)
    # tx: packets of 12 + 64 bytes at 0x6000 (header zero, data a pattern)
    d = 0
    for i in range(tx_pkts):
        buf = 0x6000 + 0x80 * i
        mem[buf + 12:buf + 76] = bytes((i + k) & 0xff for k in range(64))
        if chain:
            struct.pack_into("<QIHH", mem, 0x2000 + 16 * d, buf, 12, DESC_NEXT, d + 1)
            struct.pack_into("<QIHH", mem, 0x2000 + 16 * (d + 1), buf + 12, 64, 0, 0)
            struct.pack_into("<H", mem, 0x3000 + 4 + 2 * i, d)
            d += 2
        else:
            struct.pack_into("<QIHH", mem, 0x2000 + 16 * d, buf, 76, 0, 0)
            struct.pack_into("<H", mem, 0x3000 + 4 + 2 * i, d)
            d += 1
    struct.pack_into("<HH", mem, 0x3000, 0, tx_pkts)
    if bad == "next-loop":
        struct.pack_into("<QIHH", mem, 0x2000, 0x6000, 12, DESC_NEXT, 0)
    elif bad == "huge-len":
        struct.pack_into("<QIHH", mem, 0x2000, 0x6000, 0xffffffff, 0, 0)
    elif bad == "avail-jump":
        struct.pack_into("<HH", mem, 0x3000, 0, 0xfff0)
    elif bad == "overlap":
        # an rx buffer that is the tx packet's own bytes (a copy onto itself)
        struct.pack_into("<QIHH", mem, 0x0000, 0x6000, 0x400, DESC_WRITE, 0)
    return bytes(mem).rstrip(b"\0")


def ring_seed(opts, num, image):
    return bytes([opts, {2: 0, 4: 1, 8: 2, 16: 3, 32: 4, 64: 5, 128: 6, 256: 7}[num]]) + \
        struct.pack("<HHB", 0, 0, 3) + image


def msg(req, payload=b"", flags=V1, size=None):
    return struct.pack("<III", req, flags, len(payload) if size is None else size) + payload


def handshake(num, features):
    m = msg(SET_OWNER) + msg(GET_FEATURES) + msg(SET_FEATURES, struct.pack("<Q", features))
    m += msg(GET_PROTOCOL_FEATURES) + msg(SET_PROTOCOL_FEATURES, struct.pack("<Q", 0b1001))
    m += msg(GET_QUEUE_NUM)
    m += msg(SET_MEM_TABLE, struct.pack("<II", 1, 0) + struct.pack("<QQQQ", 0, MEM, UVA, 0))
    for q in (0, 1):
        base = UVA + q * 0x2000
        m += msg(SET_VRING_NUM, struct.pack("<II", q, num))
        m += msg(SET_VRING_ADDR, struct.pack("<IIQQQQ", q, 0, base, base + 0x1400,
                                             base + 0x1000, 0))
        m += msg(SET_VRING_BASE, struct.pack("<II", q, 0))
        m += msg(SET_VRING_KICK, struct.pack("<Q", q))
        m += msg(SET_VRING_CALL, struct.pack("<Q", q))
        m += msg(SET_VRING_ENABLE, struct.pack("<II", q, 1), flags=V1 | NEED_REPLY)
    return m


def main():
    feats = (1 << F_VERSION_1) | (1 << F_MRG) | (1 << F_EVIDX) | (1 << F_INORDER) | (1 << F_PROTO)
    all_on = 0x3c  # MRG, EVENT_IDX, IN_ORDER, VERSION_1; loopback
    # The ring walk.
    write("vhost-ring", "loopback-8", ring_seed(all_on, 256, rings(256, 8, 8)))
    write("vhost-ring", "loopback-chains", ring_seed(all_on, 64, rings(64, 4, 8, chain=True)))
    write("vhost-ring", "sink-plain", ring_seed(0x01 | 0x20, 16, rings(16, 8, 0)))
    write("vhost-ring", "source-legacy", ring_seed(0x02, 8, rings(8, 0, 8)))
    write("vhost-ring", "kick-driven", ring_seed(all_on | 0x40, 32, rings(32, 8, 8)))
    for bad in ("next-loop", "huge-len", "avail-jump", "overlap"):
        write("vhost-ring", "bad-" + bad, ring_seed(all_on, 16, rings(16, 4, 8, bad=bad)))
    # Messages: the hand-shake with the same memory, then queries and a reset.
    image = rings(256, 8, 8)
    head = bytes([0x00]) + struct.pack("<H", len(image)) + image
    write("vhost-msg", "handshake", head + handshake(256, feats))
    write("vhost-msg", "handshake-then-stop", head + handshake(64, feats) +
          msg(GET_VRING_BASE, struct.pack("<II", 1, 0)) + msg(GET_STATUS) +
          msg(SET_STATUS, struct.pack("<Q", 0xf)))
    write("vhost-msg", "two-queue-pairs", bytes([0x10]) + struct.pack("<H", 0) +
          handshake(32, feats | (1 << 22)))
    write("vhost-msg", "bad-mem-table", bytes([0x00]) + struct.pack("<H", 0) +
          msg(SET_MEM_TABLE, struct.pack("<II", 2, 0) + struct.pack("<QQQQ", 0, MEM, UVA, 0) +
              struct.pack("<QQQQ", MEM, 1 << 63, UVA + MEM, 0)))
    write("vhost-msg", "short-and-versions", bytes([0x00, 0, 0]) + msg(GET_FEATURES, flags=2) +
          msg(SET_VRING_NUM, struct.pack("<II", 0, 256), size=200))

    # Control channel: a hand-shake, a ping, a request with fds in two records.
    WIRE_MAGIC, REQ, FDS = 0x4843504D, 1, 3

    def rec(kind, typ, seq, payload=b"", nfds=0, attach=0, status=0):
        h = struct.pack("<IHHIiIIII", WIRE_MAGIC, 1, kind, typ, status, seq, len(payload), nfds, 0)
        data = h + payload
        return struct.pack("<HB", len(data), attach) + data

    hello = struct.pack("<IIQQ", 1, 0, 0x6d706f7073667a7a, 12345)
    write("chan", "hello-ping", bytes([0]) + rec(REQ, 1, 1, hello) + rec(REQ, 2, 2))
    write("chan", "user-request-fds", bytes([1]) + rec(REQ, 0x1000, 7, b"abc", nfds=2, attach=1) +
          rec(FDS, 0x1000, 7, nfds=2, attach=1))
    write("chan", "refused", bytes([2]) + rec(REQ, 1, 1, hello))
    write("chan", "unknown-type", bytes([1]) + rec(REQ, 0x77, 3, b"x" * 100))


if __name__ == "__main__":
    main()
