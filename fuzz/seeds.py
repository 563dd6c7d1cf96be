#!/usr/bin/env python3
"""Seed corpora for the layer, extract and ldcache fuzz targets: small hostile and
ordinary layers (in the targets' split format) and ld.so.cache files of each format.
Usage: seeds.py CORPUS_DIR (writes CORPUS_DIR/{layer,extract,ldcache,dockerfile})."""
import hashlib, io, os, shutil, struct, sys, tarfile

out = sys.argv[1]
for t in ("layer", "extract", "ldcache", "dockerfile"):
    os.makedirs(os.path.join(out, t), exist_ok=True)

def tar(entries, fmt=tarfile.PAX_FORMAT):
    buf = io.BytesIO()
    t = tarfile.open(fileobj=buf, mode="w", format=fmt)
    for e in entries:
        kind, name = e[0], e[1]
        ti = tarfile.TarInfo(name)
        ti.mode, ti.mtime, data = 0o755, 0, None
        if kind == "f":
            data = e[2] if len(e) > 2 else b"x"
            ti.size = len(data)
        elif kind == "d":
            ti.type = tarfile.DIRTYPE
        elif kind == "s":
            ti.type, ti.linkname = tarfile.SYMTYPE, e[2]
        elif kind == "h":
            ti.type, ti.linkname = tarfile.LNKTYPE, e[2]
        elif kind == "p":
            ti.type = tarfile.FIFOTYPE
        elif kind == "c":
            ti.type, ti.devmajor, ti.devminor = tarfile.CHRTYPE, 1, 3
        t.addfile(ti, io.BytesIO(data) if data is not None else None)
    t.close()
    return buf.getvalue()

def layered(*layers):
    """The split format: a count byte, then each layer but the last prefixed with its
    length in 512-byte blocks."""
    b = bytes([len(layers)])
    for l in layers[:-1]:
        l = l + b"\0" * (-len(l) % 512)
        b += struct.pack("<H", len(l) // 512) + l
    return b + layers[-1]

elf = b""
for p in ("/bin/busybox", "/bin/true"):
    if os.path.exists(p) and os.path.getsize(p) < (4 << 20):
        elf = open(p, "rb").read()
        break
interp = b"#!/bin/sh\necho hi\n"
canary = "tmp/nobase-fuzz-escape"
seeds = {
    "plain": layered(tar([("d", "app/"), ("f", "app/x", elf[:65536] or b"\x7fELF"), ("f", "etc/passwd", b"root:x:0:0::/:/bin/sh\n")])),
    "script": layered(tar([("f", "app/x", interp), ("s", "bin/sh", "busybox"), ("f", "bin/busybox", b"\x7fELF\x02\x01\x01")])),
    "dotdot": layered(tar([("f", "../x"), ("f", "a/../../x"), ("f", "/abs/x")])),
    "symlink-escape": layered(tar([("s", "esc", "../../.."), ("f", "esc/x")])),
    "symlink-root": layered(tar([("s", "abs", "/"), ("f", "abs/" + canary + "/x")])),
    "cross-layer": layered(tar([("s", "x", "../../victim"), ("s", "r", "/")]),
                           tar([("f", "x/authorized_keys"), ("f", "r/" + canary)])),
    "dir-through-link": layered(tar([("s", "foo", "/" + canary), ("d", "foo/")])),
    "hardlinks": layered(tar([("f", "a", b"data"), ("h", "b", "a"), ("h", "c", "../../etc/shadow"), ("h", "d", "/etc/shadow")])),
    "whiteouts": layered(tar([("d", "app/"), ("f", "app/a"), ("f", "app/b"), ("d", "var/"), ("f", "var/o")]),
                         tar([("f", "app/.wh.a"), ("f", "var/.wh..wh..opq"), ("f", "var/n"), ("f", ".wh."), ("f", "../.wh.x")]),
                         tar([("f", "app/.wh..wh..opq"), ("f", "app/.wh..wh.plnk"), ("f", "x/.wh.."), ("f", "app/.wh.b")])),
    "opaque-late": layered(tar([("d", "d/"), ("f", "d/a")]), tar([("f", "d/b"), ("f", "d/.wh..wh..opq")])),
    "file-then-dir": layered(tar([("f", "f"), ("f", "f/g"), ("d", "f/"), ("s", "l", "l"), ("f", "l/x")])),
    "devices": layered(tar([("p", "fifo"), ("c", "null"), ("f", "setuid")])),
    "gnu-long": layered(tar([("f", "d/" + "n" * 200), ("s", "l" * 150, "t" * 150)], tarfile.GNU_FORMAT)),
    "ustar": layered(tar([("f", "u/x", b"ustar")], tarfile.USTAR_FORMAT)),
    "loop": layered(tar([("s", "a", "b"), ("s", "b", "a"), ("f", "a/x")])),
}
# PAX desync (CVE-2025-62518): a ustar size of 0 with a PAX size of 512.
def block(b):
    return b + b"\0" * (-len(b) % 512)
rec = b"12 size=512\n"
x = tarfile.TarInfo("././@PaxHeader")
x.type, x.size = tarfile.XHDTYPE, len(rec)
inner = tarfile.TarInfo("inner")
inner.size = 0
seeds["pax-size"] = layered(x.tobuf(tarfile.USTAR_FORMAT) + block(rec) + inner.tobuf(tarfile.USTAR_FORMAT)
                            + block(b"y" * 512) + b"\0" * 1024)
for name, data in seeds.items():
    for t in ("layer", "extract"):
        open(os.path.join(out, t, name), "wb").write(data)

# Dockerfiles (text, a NUL, then the context's x.tar): every instruction kind, stages,
# here-documents, variables, and ADD of the hostile archives above.
dockerfiles = {
    "minimal": "FROM scratch\nCOPY a /a\nCMD [\"/a\"]\n",
    "config": "# escape=`\nARG V=1\nFROM scratch AS base\nENV A=$V B=\"two words\"\nLABEL x=y\nEXPOSE 80/tcp 53/udp\n"
              "VOLUME /data\nWORKDIR /w\nUSER 1000:1000\nSTOPSIGNAL SIGTERM\nHEALTHCHECK --interval=5s CMD [\"/a\"]\n"
              "SHELL [\"/bin/sh\", \"-c\"]\nENTRYPOINT /a `\n  arg\nMAINTAINER me\n",
    "stages": "FROM scratch AS build\nCOPY --chmod=0755 --chown=1:1 a dir/ /out/\nFROM scratch\n"
              "COPY --from=build /out/* /bin/\nCOPY --from=0 --exclude=*.md / /copy/\n",
    "heredoc": "FROM scratch\nCOPY <<EOF /etc/motd\nhello ${X:-there}\nEOF\nCOPY <<'E1' <<E2 /d/\n$raw\nE1\nx\nE2\n",
    "run-refused": "FROM scratch\nRUN echo no\nONBUILD COPY a /a\n",
    "add-remote": "FROM scratch\nADD https://example.com/x /x\nADD git@example.com:x.git /g\n",
    "symlinks": "FROM scratch\nCOPY dir/up /up\nCOPY dir /dir\nWORKDIR ../../..\nCOPY a ../../../escape\n",
}
for name, text in dockerfiles.items():
    open(os.path.join(out, "dockerfile", name), "wb").write(text.encode() + b"\0")
for name in ("plain", "dotdot", "symlink-escape", "hardlinks", "whiteouts", "gnu-long", "pax-size", "devices"):
    tarbytes = seeds[name][1:] if seeds[name][0] == 1 else seeds[name][3:]
    text = "FROM scratch\nADD x.tar /d/\nADD x.tar /\nCOPY x.tar /raw\n"
    open(os.path.join(out, "dockerfile", "add-" + name), "wb").write(text.encode() + b"\0" + tarbytes)

# ld.so.cache: the host's, one of each format made here, and truncations.
def new_cache(entries, le=True):
    e = "<" if le else ">"
    strings, offs = b"", []
    base = 48 + 24 * len(entries)
    for k, v in entries:
        ko = base + len(strings); strings += k + b"\0"
        vo = base + len(strings); strings += v + b"\0"
        offs.append((ko, vo))
    h = b"glibc-ld.so.cache1.1" + struct.pack(e + "II", len(entries), len(strings))
    h += bytes([2 if le else 3]) + b"\0" * 3 + struct.pack(e + "I", 0) + b"\0" * 12
    for ko, vo in offs:
        h += struct.pack(e + "iIIIQ", 0x303, ko, vo, 0, 0)
    return h + strings

def old_cache(entries):
    strings, offs = b"", []
    for k, v in entries:
        offs.append((len(strings), len(strings) + len(k) + 1))
        strings += k + b"\0" + v + b"\0"
    h = b"ld.so-1.7.0\0" + struct.pack("<I", len(entries))
    for ko, vo in offs:
        h += struct.pack("<iII", 0x303, ko, vo)
    return h + strings

libs = [(b"libm.so.6", b"/lib/x86_64-linux-gnu/libm.so.6"), (b"libc.so.6", b"/lib/x86_64-linux-gnu/libc.so.6")]
caches = {"new-le": new_cache(libs), "new-be": new_cache(libs, False), "old": old_cache(libs)}
old = old_cache(libs)
caches["old-with-new"] = old + b"\0" * (-len(old) % 8) + new_cache(libs)
if os.path.exists("/etc/ld.so.cache"):
    caches["host"] = open("/etc/ld.so.cache", "rb").read()
for name, data in caches.items():
    open(os.path.join(out, "ldcache", name), "wb").write(data)
