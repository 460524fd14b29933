"""The dyn_python runtime test: Debian's python3 on cairn.

Boot 1 (`write`): walks the data tree, checks every file against the
pattern its name gives (f-<seed>-<bytes>.dat, the same pattern the Rust
side wrote: pattern_word in test/runtime/src/lib.rs), and writes one JSON
record per file (path, size, seed, sha256) under out/, each flushed and
fsync'd, then the directory; a tempfile renamed into place with
os.replace; exits 42 (FIRST-BOOT).
Boot 2 (`check`): reads the records back, compares them with the tree
walked and hashed again, and prints PASS.
"""
import hashlib
import json
import os
import sys
import tempfile

M32 = 0xFFFFFFFF


def pattern_word(off, seed):
    x = (((off >> 2) * 2654435761) & M32) ^ ((seed * 0x9E3779B9) & M32) ^ ((off >> 34) & M32)
    x ^= x >> 15
    x = (x * 0x2C1B3C6D) & M32
    x ^= x >> 12
    return x


def pattern_bytes(n, seed):
    words = (pattern_word(o, seed).to_bytes(4, "little") for o in range(0, n + 3, 4))
    return b"".join(words)[:n]


def fail(what):
    print("FAIL dyn-python: " + what, file=sys.stderr)
    sys.exit(1)


def walk(top):
    found = []
    for root, dirs, files in os.walk(top):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                data = f.read()
            st = os.stat(path)
            if st.st_size != len(data):
                fail(f"{path}: stat says {st.st_size} bytes, read {len(data)}")
            _, seed, size = name[:-4].split("-")
            if int(size) != len(data) or data != pattern_bytes(len(data), int(seed)):
                fail(f"{path}: contents differ from pattern {seed}")
            found.append({"path": path, "size": len(data), "seed": int(seed),
                          "sha256": hashlib.sha256(data).hexdigest()})
    return found


def record_name(rec):
    return rec["path"].replace("/", "_") + ".json"


def write(top, out):
    files = walk(top)
    if not files:
        fail("empty tree")
    os.makedirs(out, exist_ok=True)
    for rec in files:
        with open(os.path.join(out, record_name(rec)), "w") as f:
            json.dump(rec, f, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
    fd, tmp = tempfile.mkstemp(dir=out, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump({"files": len(files), "bytes": sum(r["size"] for r in files)}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, os.path.join(out, "index.json"))
    dfd = os.open(out, os.O_RDONLY)
    os.fsync(dfd)
    os.close(dfd)
    print(f"FIRST-BOOT dyn-python: {len(files)} records written and fsync'd")
    sys.exit(42)


def check(top, out):
    files = walk(top)
    with open(os.path.join(out, "index.json")) as f:
        index = json.load(f)
    if index != {"files": len(files), "bytes": sum(r["size"] for r in files)}:
        fail(f"index {index}")
    names = sorted(n for n in os.listdir(out) if n != "index.json")
    if names != sorted(record_name(r) for r in files):
        fail(f"records {names}")
    for rec in files:
        with open(os.path.join(out, record_name(rec))) as f:
            if json.load(f) != rec:
                fail(f"record of {rec['path']} differs")
    print(f"PASS dyn-python: {len(files)} files, {sum(r['size'] for r in files)} bytes, "
          f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs")


if __name__ == "__main__":
    {"write": write, "check": check}[sys.argv[1]](sys.argv[2], sys.argv[3])
