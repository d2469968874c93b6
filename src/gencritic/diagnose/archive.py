"""Loop mode: an embedded SQLite archive of diagnoses across iterations of a generate-evaluate loop.

Each call of :func:`diagnose_loop` diagnoses the input, compares it with the previous entry
of the same profile (overall delta, checks resolved / newly failing, per-check value change),
and, when a CLIP model is given, how novel the result is against everything archived before
(mean cosine distance to the k nearest earlier embeddings, see
:func:`gencritic.metrics.sets.novelty`). Then it appends the new entry. The archive is one
file, safe to copy, readable with any SQLite tool.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gencritic.diagnose.api import diagnose
from gencritic.diagnose.profiles import DEFAULT_PROFILE
from gencritic.errors import InputError
from gencritic.jsonio import dumps_strict
from gencritic.metrics.sets import novelty

if TYPE_CHECKING:
    from gencritic.models import ModelPool

SCHEMA = """CREATE TABLE IF NOT EXISTS diagnoses (
  iteration INTEGER PRIMARY KEY AUTOINCREMENT,
  created TEXT NOT NULL,
  input TEXT NOT NULL,
  profile TEXT NOT NULL,
  overall REAL,
  passed INTEGER NOT NULL,
  result TEXT NOT NULL,
  model TEXT,
  embedding BLOB
)"""


def _connect(path: Path) -> sqlite3.Connection:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(path), timeout=30)
        conn.execute(SCHEMA)
    except sqlite3.DatabaseError as exc:
        raise InputError(f"archive {path} is not a gencritic SQLite archive ({exc}); give a new file name") from None
    return conn


def compare(previous: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    """What changed between two diagnose results of the same profile (pure)."""
    prev_d, cur_d = previous.get("diagnostics", {}), current.get("diagnostics", {})
    changes = {}
    for name, cur in cur_d.items():
        old = prev_d.get(name)
        if old is None:
            continue
        changes[name] = {"previous": old.get("value"), "now": cur.get("value"),
                         "previous_verdict": old.get("verdict"), "verdict": cur.get("verdict"),
                         "score_delta": (cur.get("score") or 0.0) - (old.get("score") or 0.0)}
    prev_overall, cur_overall = previous.get("overall"), current.get("overall")
    return {
        "previous_overall": prev_overall,
        "improvement": None if prev_overall is None or cur_overall is None else cur_overall - prev_overall,
        "resolved": sorted(n for n, c in changes.items() if c["previous_verdict"] != "good" and c["verdict"] == "good"),
        "new_issues": sorted(n for n, c in changes.items() if c["previous_verdict"] == "good" and c["verdict"] != "good"),
        "changes": changes,
    }


def diagnose_loop(input: str | Path, archive: str | Path, profile: str = DEFAULT_PROFILE, prompt: str | None = None,
                  reference: str | Path | None = None, pool: ModelPool | None = None, model: str | None = None,
                  k: int = 3) -> dict[str, Any]:
    """``diagnose`` + a ``loop`` block comparing with the archive's last entry, then archive it."""
    if model is not None and pool is None:
        from gencritic.models import ModelPool

        pool = ModelPool()
    result = diagnose(input, profile=profile, prompt=prompt, reference=reference, pool=pool, model=model)
    embedding = None
    if model is not None and pool is not None:
        from gencritic.diagnose.api import key_frame_rgb
        from gencritic.diagnose.probes import encode_image

        embedding = encode_image(pool.clip(model), key_frame_rgb(result))
    path = Path(archive).expanduser()
    conn = _connect(path)
    try:
        prof_name = result["profile"]["name"]
        last = conn.execute("SELECT iteration, result FROM diagnoses WHERE profile = ? ORDER BY iteration DESC LIMIT 1",
                            (prof_name,)).fetchone()
        best = conn.execute("SELECT MAX(overall) FROM diagnoses WHERE profile = ?", (prof_name,)).fetchone()[0]
        loop: dict[str, Any] = {"archive": str(path)}
        if last is None:
            loop.update({"previous_iteration": None, "improvement": None, "first": True})
        else:
            loop.update(compare(json.loads(last[1]), result))
            loop["previous_iteration"] = int(last[0])
        overall = result.get("overall")
        loop["best_overall_before"] = best
        loop["is_best"] = overall is not None and (best is None or overall > best)
        if embedding is not None:
            rows = conn.execute("SELECT embedding FROM diagnoses WHERE model = ? AND embedding IS NOT NULL",
                                (model,)).fetchall()
            if rows:
                arc = np.stack([np.frombuffer(r[0], dtype=np.float64) for r in rows])
                loop["novelty"] = float(novelty(embedding[None], arc, k=k)[0])
                loop["novelty_k"] = min(k, len(rows))
            else:
                loop["novelty"] = None
        with conn:
            cur = conn.execute(
                "INSERT INTO diagnoses (created, input, profile, overall, passed, result, model, embedding) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), result["input"], prof_name, overall,
                 int(bool(result["passed"])), dumps_strict(result, sort_keys=True), model,
                 None if embedding is None else np.asarray(embedding, np.float64).tobytes()))
        loop["iteration"] = int(cur.lastrowid or 0)
    finally:
        conn.close()
    result["loop"] = loop
    return result


def best_per_approach(archive: str | Path, k: int, profile: str | None = None, seed: int = 0) -> list[dict[str, Any]]:
    """Cluster the archived results (by their CLIP embeddings, seeded k-means) into ``k``
    approach types and return the best-scoring entry of each, best first: what a loop keeps
    to explore several approaches instead of refining one.
    """
    from gencritic.metrics.sets import best_per_cluster, kmeans

    path = Path(archive).expanduser()
    if not path.is_file():
        raise InputError(f"archive not found: {path}; run `gencritic diagnose ... --archive {path}` first")
    conn = _connect(path)
    try:
        query = "SELECT iteration, input, overall, embedding FROM diagnoses WHERE embedding IS NOT NULL"
        args: tuple[Any, ...] = ()
        if profile is not None:
            query += " AND profile = ?"
            args = (profile,)
        rows = conn.execute(query + " ORDER BY iteration", args).fetchall()
    finally:
        conn.close()
    if len(rows) < k:
        raise InputError(f"archive {path} has {len(rows)} entries with embeddings (diagnosed with --model); "
                         f"need at least k={k}")
    emb = np.stack([np.frombuffer(r[3], dtype=np.float64) for r in rows])
    emb = emb / np.linalg.norm(emb, axis=1, keepdims=True)  # cosine geometry, like novelty
    labels, _, _ = kmeans(emb, k, seed=seed)
    scores = np.array([-np.inf if r[2] is None else r[2] for r in rows])
    best = best_per_cluster(labels, scores)
    out = [{"cluster": int(c), "size": int((labels == c).sum()), "iteration": int(rows[i][0]), "input": rows[i][1],
            "overall": rows[i][2]} for c, i in best.items()]
    return sorted(out, key=lambda d: (-(d["overall"] if d["overall"] is not None else -np.inf), d["cluster"]))
