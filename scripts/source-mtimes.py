#!/usr/bin/env python3
"""Keeps a warm build cache warm across fresh clones (CI).

Cargo decides that a crate is stale when one of its source files is newer than
the crate's last build. A fresh clone gives every file the clone's time, so a
"warm" cache outside the clone still recompiled every workspace crate in every
CI run. This script records, in the build cache, each tracked file's git blob
id and the modification time it was given; in the next clone, a file whose
blob id is the recorded one gets the recorded time back, and any other file
keeps its new time (so cargo rebuilds what changed, and only that).

Safety rests on one rule: every build into this cache goes through a run that
updates the manifest. The test command therefore restores times only when
CI=true (a CI job: a clean clone, nobody else building into the cache) and the
working tree has no tracked-file changes; in a developer's working copy the
times are the real edit times already and nothing is touched. A developer who
builds into the same cache by hand should delete the manifest (or the cache).

Usage: source-mtimes.py MANIFEST   (run from the repository root)
"""

import json
import os
import subprocess
import sys


def tracked_blobs():
    out = subprocess.run(
        ["git", "ls-files", "-s", "-z"], check=True, capture_output=True
    ).stdout
    for rec in out.split(b"\0"):
        if not rec:
            continue
        meta, path = rec.split(b"\t", 1)
        mode, blob, _stage = meta.split(b" ")
        if mode == b"160000":  # a submodule: no file here
            continue
        yield os.fsdecode(path), blob.decode()


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: source-mtimes.py MANIFEST")
    manifest_path = sys.argv[1]
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        check=True,
        capture_output=True,
    ).stdout
    if dirty:
        print("source times: tracked files changed in this tree; left as they are")
        return
    try:
        with open(manifest_path, encoding="utf-8") as f:
            old = json.load(f).get("files", {})
    except (OSError, ValueError):
        old = {}
    new = {}
    restored = changed = 0
    for path, blob in tracked_blobs():
        try:
            st = os.lstat(path)
        except OSError:
            continue
        rec = old.get(path)
        if isinstance(rec, list) and len(rec) == 2 and rec[0] == blob and isinstance(rec[1], int):
            if not os.path.islink(path):
                os.utime(path, ns=(rec[1], rec[1]))
            new[path] = rec
            restored += 1
        else:
            new[path] = [blob, st.st_mtime_ns]
            changed += 1
    # Directories: cargo's rerun-if-changed on a directory looks at the directories'
    # times too. Each directory holding tracked files gets the newest time of what it
    # holds (deepest first), so it is new exactly when something in it is.
    newest = {}
    for path, (_blob, mtime) in new.items():
        d = os.path.dirname(path)
        while d:
            if newest.get(d, 0) < mtime:
                newest[d] = mtime
            d = os.path.dirname(d)
    for d in sorted(newest, key=lambda p: -p.count(os.sep)):
        try:
            os.utime(d, ns=(newest[d], newest[d]))
        except OSError:
            pass
    os.makedirs(os.path.dirname(os.path.abspath(manifest_path)), exist_ok=True)
    tmp = manifest_path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump({"version": 1, "files": new}, f)
    os.replace(tmp, manifest_path)
    print(f"source times: {restored} files as in the last run, {changed} new or changed")


if __name__ == "__main__":
    main()
