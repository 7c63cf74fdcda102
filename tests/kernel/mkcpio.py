#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Write a directory tree as an initramfs: a "newc" cpio archive on stdout.

Usage: mkcpio.py DIR > initramfs.cpio

Files, directories and symlinks; owned by root; modes as on disk. No cpio
program needed on the host (a fresh Debian has none).
"""
import os
import stat
import sys


def header(ino, mode, nlink, size, name):
    fields = [ino, mode, 0, 0, nlink, 0, size, 0, 0, 0, 0, len(name) + 1, 0]
    return b"070701" + b"".join(b"%08x" % f for f in fields)


def pad(n):
    return b"\0" * ((4 - n % 4) % 4)


def entry(out, ino, mode, nlink, name, data):
    h = header(ino, mode, nlink, len(data), name) + name.encode() + b"\0"
    out.write(h + pad(len(h)) + data + pad(len(data)))


def main():
    root = sys.argv[1]
    out = sys.stdout.buffer
    ino = 1
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel = os.path.relpath(dirpath, root)
        if rel != ".":
            st = os.lstat(dirpath)
            entry(out, ino, stat.S_IFDIR | (st.st_mode & 0o7777), 2, rel, b"")
            ino += 1
        for name in sorted(filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]):
            path = os.path.join(dirpath, name)
            arc = os.path.normpath(os.path.join(rel, name))
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                data = os.readlink(path).encode()
                entry(out, ino, stat.S_IFLNK | 0o777, 1, arc, data)
            elif stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    data = f.read()
                entry(out, ino, stat.S_IFREG | (st.st_mode & 0o7777), 1, arc, data)
            else:
                continue
            ino += 1
    entry(out, 0, 0, 1, "TRAILER!!!", b"")


if __name__ == "__main__":
    main()
