"""Write a judge3d result: ``matches.csv``, ``leaderboard.csv``, ``leaderboard.json``, ``leaderboard.html``.

Every file is replaced atomically (:mod:`gencritic.atomic`), JSON is strict (:mod:`gencritic.jsonio`),
and nothing here computes a rating: it lays out what :mod:`gencritic.judges.judge3d` returned. The
HTML page reuses the report's template and stylesheet, so it looks like ``gencritic report`` and,
like it, loads nothing from the network.
"""

from __future__ import annotations

import csv
import io
from html import escape
from importlib import resources
from pathlib import Path
from typing import Any

from gencritic.atomic import atomic_write_text
from gencritic.jsonio import dumps_strict, write_json

MATCH_COLUMNS = ("prompt_id", "prompt", "criterion", "left", "right", "p_left", "p_right", "winner", "error")
BOARD_COLUMNS = ("criterion", "rank", "generator", "elo", "elo_ci_low", "elo_ci_high", "strength", "wins", "losses",
                 "ties", "matches", "win_rate")


def _csv(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: ("" if row.get(c) is None else repr(row[c]) if isinstance(row.get(c), float) else row[c])
                         for c in columns})
    return buf.getvalue()


def board_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"criterion": criterion, **row} for criterion, rows in result["ratings"].items() for row in rows]


def _fmt(v: Any, digits: int = 1) -> str:
    if v is None:
        return "–"
    return f"{v:.{digits}f}" if isinstance(v, float) else escape(str(v))


def render_html(result: dict[str, Any], title: str = "gencritic judge3d leaderboard") -> str:
    import gencritic

    sections = []
    m = result["matches"]
    consistency = m["position_consistency"]
    sections.append(
        f"<section id='summary'><h2>Summary</h2><p>{len(result['generators'])} generators, {result['prompts']} "
        f"prompts, {m['total']} comparisons ({m['decided']} decided, {m['failed']} failed); both orders agreed on "
        f"{_fmt(None if consistency is None else 100 * consistency)}% of pairs. Judge: "
        f"<code>{escape(str(result['settings']['vlm']))}</code>. Elo = 1000 + 400·β/ln 10 from a Bradley–Terry fit; "
        f"95% intervals resample prompts.</p></section>")
    for criterion, rows in result["ratings"].items():
        body = "".join(
            f"<tr><td>{r['rank']}</td><td>{escape(r['generator'])}</td><td>{_fmt(r['elo'])}</td>"
            f"<td>{_fmt(r['elo_ci_low'])} – {_fmt(r['elo_ci_high'])}</td><td>{r['wins']}</td><td>{r['losses']}</td>"
            f"<td>{r['ties']}</td><td>{_fmt(r['win_rate'], 3)}</td></tr>" for r in rows)
        sections.append(
            f"<section id='board-{escape(criterion)}'><h2>{escape(criterion)}</h2><table><thead><tr><th>rank</th>"
            f"<th>generator</th><th>Elo</th><th>95% CI</th><th>wins</th><th>losses</th><th>ties</th>"
            f"<th>win rate</th></tr></thead><tbody>{body}</tbody></table></section>")
    failed = [r for r in result["rows"] if r["error"]]
    if failed:
        items = "".join(f"<li><code>{escape(r['prompt_id'])}</code> {escape(r['criterion'])} "
                        f"{escape(r['left'])} vs {escape(r['right'])}: {escape(str(r['error']))}</li>"
                        for r in failed[:50])
        sections.append(f"<section id='failed'><h2>Failed comparisons ({len(failed)})</h2><ul>{items}</ul></section>")
    page = resources.files("gencritic.report").joinpath("template.html").read_text(encoding="utf-8")
    css = resources.files("gencritic.report").joinpath("report.css").read_text(encoding="utf-8")
    data = dumps_strict({k: v for k, v in result.items() if k != "rows"}, ensure_ascii=False)
    header = f"<header><h1>{escape(title)}</h1><div class='meta'>gencritic {escape(gencritic.__version__)}</div></header>"
    for key, value in (("{{CSS}}", css), ("{{JS}}", ""), ("{{TITLE}}", escape(title)),
                       ("{{VERSION}}", escape(gencritic.__version__)),
                       ("{{DATA}}", data.replace("</", "<\\/").replace("<!--", "<\\!--")),
                       ("{{BODY}}", header + "<main>" + "".join(sections) + "</main>")):
        page = page.replace(key, value)
    return page


def write_leaderboard(result: dict[str, Any], out: Path) -> dict[str, Path]:
    """All four files into ``out``; returns their paths by kind."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"matches": out / "matches.csv", "csv": out / "leaderboard.csv", "json": out / "leaderboard.json",
             "html": out / "leaderboard.html"}
    atomic_write_text(paths["matches"], _csv(result["rows"], MATCH_COLUMNS))
    atomic_write_text(paths["csv"], _csv(board_rows(result), BOARD_COLUMNS))
    write_json(paths["json"], {k: v for k, v in result.items() if k != "rows"}, ensure_ascii=False)
    atomic_write_text(paths["html"], render_html(result))
    return paths
