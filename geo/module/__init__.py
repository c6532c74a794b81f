"""The index's Redis module (`module.c`): its hot scripts' work in C, RH.SEARCH for the nearby
search (`search.c`), RH.CLAIM and RH.PLACE for a batch of pings' two steps (`ingest.c`).

Optional: the index calls its commands on a Redis that has it loaded (`loadmodule` in its
configuration, on every node of a cluster) and the Lua scripts elsewhere, with the same
replies and the same values written (`geo.scripts.NATIVE`). `build` compiles it with the
system's C compiler."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from importlib import resources
from pathlib import Path

C_SOURCES = ("module.c", "search.c", "ingest.c")
SOURCES = (*C_SOURCES, "module.h", "redismodule.h")
CFLAGS = ("-O2", "-fPIC", "-shared", "-ffp-contract=off", "-Wall")


def build(folder: Path) -> Path | None:
    """The module built into `folder` (named by a hash of its sources and flags, so a change
    builds anew); None when no C compiler is found."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        return None
    here = resources.files("geo.module")
    digest = hashlib.sha256(" ".join(CFLAGS).encode())
    for name in SOURCES:
        digest.update(here.joinpath(name).read_bytes())
    target = folder / f"ridehail-{digest.hexdigest()[:12]}.so"
    if not target.exists():
        folder.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".part")
        with resources.as_file(here) as source:
            subprocess.run([compiler, *CFLAGS, "-o", str(partial),
                            *(str(Path(source) / name) for name in C_SOURCES), "-lm"],
                           check=True, capture_output=True, text=True)
        partial.replace(target)
    return target
