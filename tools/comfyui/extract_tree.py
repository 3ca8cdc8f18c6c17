#!/usr/bin/env python3
"""Write a git tree (default HEAD) of a bare repo out to a plain directory, blob by blob.
Usage: extract_tree.py GIT_DIR DEST [REV]. Missing blobs are skipped and listed."""
import os, subprocess, sys
git_dir, dest = sys.argv[1], sys.argv[2]
rev = sys.argv[3] if len(sys.argv) > 3 else "HEAD"
g = ["git", "--git-dir", git_dir]
out = subprocess.run(g + ["ls-tree", "-r", "-z", "--long", rev], check=True, capture_output=True).stdout
entries = []
for rec in out.split(b"\0"):
    if not rec:
        continue
    meta, path = rec.split(b"\t", 1)
    mode, typ, sha, size = meta.split()
    entries.append((mode.decode(), typ.decode(), sha.decode(), path.decode()))
cat = subprocess.Popen(g + ["cat-file", "--batch"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
missing, written = [], 0
for mode, typ, sha, path in entries:
    if typ != "blob":  # submodule (commit) entries
        missing.append(f"{path} ({typ} {sha})"); continue
    cat.stdin.write(sha.encode() + b"\n"); cat.stdin.flush()
    header = cat.stdout.readline().split()
    if len(header) < 3 or header[1] == b"missing":
        missing.append(f"{path} (blob {sha} missing)"); continue
    data = cat.stdout.read(int(header[2])); cat.stdout.read(1)
    full = os.path.join(dest, path)
    os.makedirs(os.path.dirname(full), exist_ok=True)
    if mode == "120000":
        if os.path.lexists(full): os.remove(full)
        os.symlink(data.decode(), full)
    else:
        with open(full, "wb") as f: f.write(data)
        os.chmod(full, 0o755 if mode == "100755" else 0o644)
    written += 1
cat.stdin.close(); cat.wait()
print(f"written {written} files; skipped {len(missing)}")
for m in missing: print("SKIPPED:", m)
