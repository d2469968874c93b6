"""Assemble the report: one self-contained HTML page and a Markdown summary of a results folder.

The page carries everything it needs: CSS and JS are inlined from the package's
``report.css``/``report.js``, plots are inline SVG, thumbnails are embedded JPEGs (or
relative links with ``embed=False``), and the table data is a JSON block the script reads.
A Content-Security-Policy forbids every network fetch, so opening the file leaks nothing
and works offline. Numbers come from the results files; this module computes only
summaries of them (means per group, correlations with human ratings), never scores.
"""

from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass, field
from html import escape
from importlib import resources
from pathlib import Path
from typing import Any

from gencritic.atomic import atomic_write_text
from gencritic.errors import InputError
from gencritic.io.fsnames import printable
from gencritic.jsonio import dumps_strict
from gencritic.report.data import ResultsData, group_means, load_results, ranked
from gencritic.report.plots import correlations, histogram_svg, scatter_svg
from gencritic.report.thumbs import Thumb, thumbnails


@dataclass
class ReportOptions:
    views_dir: Path | None = None
    media_root: Path | None = None
    embed: bool = True
    thumb_size: int = 160
    top_n: int = 8
    title: str | None = None
    render: bool = False  # render meshes without views through gencritic.render (cached in the results folder)
    render_options: dict[str, Any] = field(default_factory=dict)
    group_by: list[str] = field(default_factory=list)  # leaderboard columns besides the detected ones


@dataclass
class ReportWritten:
    html: Path
    markdown: Path | None
    items: int
    thumbnails: int


def _asset(name: str) -> str:
    return resources.files("gencritic.report").joinpath(name).read_text(encoding="utf-8")


def _num(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, float):
        return f"{v:.4f}"
    return escape(str(v))


def _json_cell(v: Any) -> Any:
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def _float(v: Any) -> float:
    return v if isinstance(v, float) else math.nan


def _script_json(obj: Any) -> str:
    """JSON safe inside <script>: no '</' can close the element early."""
    return dumps_strict(obj, ensure_ascii=False).replace("</", "<\\/").replace("<!--", "<\\!--")


# -- sections ----------------------------------------------------------------------------------


def _cards(data: ResultsData) -> str:
    s = data.summary
    n = len(data.rows)
    ok = sum(1 for r in data.rows if r["success"])
    primary = data.primary
    mean = None
    if primary:
        vals = [r[primary] for r in ranked(data, primary)]
        mean = sum(vals) / len(vals) if vals else None
    cards = [("items", str(n)), ("scored", f"{ok} ({100.0 * ok / n:.0f}%)" if n else "0"),
             ("failed", str(n - ok)), (f"mean {primary}" if primary else "metric", _num(mean)),
             ("model", escape(str(s.get("model", "–")))), ("wall time", f"{s['wall_time_s']} s" if "wall_time_s" in s else "–")]
    return '<div class="cards">' + "".join(
        f'<div class="card"><div class="v">{v}</div><div class="k">{escape(k)}</div></div>' for k, v in cards) + "</div>"


def metric_table_rows(data: ResultsData) -> list[dict[str, Any]]:
    """Per metric column: n, mean, std, min, max and direction (over successful rows)."""
    out = []
    for col in data.metric_columns:
        vals = [r[col] for r in ranked(data, col)]
        n = len(vals)
        mean = sum(vals) / n if n else None
        std = math.sqrt(sum((v - mean) ** 2 for v in vals) / n) if n and mean is not None else None
        out.append({"metric": col, "n": n, "mean": mean, "std": std, "min": min(vals) if vals else None,
                    "max": max(vals) if vals else None,
                    "better": "higher" if data.higher_is_better.get(col, True) else "lower"})
    return out


def _metric_table(data: ResultsData) -> str:
    head = "<tr><th>metric</th><th>n</th><th>mean</th><th>std</th><th>min</th><th>max</th><th>better</th></tr>"
    body = "".join(
        f"<tr><td>{escape(m['metric'])}</td><td class='num'>{m['n']}</td><td class='num'>{_num(m['mean'])}</td>"
        f"<td class='num'>{_num(m['std'])}</td><td class='num'>{_num(m['min'])}</td>"
        f"<td class='num'>{_num(m['max'])}</td><td>{m['better']}</td></tr>" for m in metric_table_rows(data))
    return f'<table id="metric-summary"><thead>{head}</thead><tbody>{body}</tbody></table>'


def _histograms(data: ResultsData) -> str:
    plots = [histogram_svg([r[c] for r in ranked(data, c)], c) for c in data.metric_columns + data.human_columns]
    return '<div class="plots" id="histograms">' + "".join(plots) + "</div>"


def correlation_rows(data: ResultsData) -> list[dict[str, Any]]:
    out = []
    for h in data.human_columns:
        for m in data.metric_columns:
            rows = [r for r in data.rows if r["success"]]
            xs = [_float(r.get(m)) for r in rows]
            ys = [_float(r.get(h)) for r in rows]
            out.append({"metric": m, "human": h, **correlations(xs, ys), "xs": xs, "ys": ys,
                        "ids": [str(r["item_id"]) for r in rows]})
    return out


def _correlations(corr: list[dict[str, Any]]) -> str:
    head = "<tr><th>metric</th><th>human rating</th><th>n</th><th>SRCC</th><th>PLCC</th><th>KRCC</th></tr>"
    body = "".join(f"<tr><td>{escape(c['metric'])}</td><td>{escape(c['human'])}</td><td class='num'>{c['n']}</td>"
                   f"<td class='num'>{_num(c['srcc'])}</td><td class='num'>{_num(c['plcc'])}</td>"
                   f"<td class='num'>{_num(c['krcc'])}</td></tr>" for c in corr)
    plots = "".join(scatter_svg(c["xs"], c["ys"], c["metric"], c["human"], f"{c['metric']} vs {c['human']}",
                                c["ids"]) for c in corr)
    return (f'<table id="correlations"><thead>{head}</thead><tbody>{body}</tbody></table>'
            f'<div class="plots" id="scatter-plots">{plots}</div>')


def _strip_html(thumbs: list[Thumb], alt: str) -> str:
    if not thumbs:
        return '<div class="strip muted">no picture</div>'
    return '<div class="strip">' + "".join(
        f'<figure><img src="{escape(t.src)}" alt="{escape(alt)} {escape(t.label)}">'
        f"<figcaption>{escape(t.label)}</figcaption></figure>" for t in thumbs) + "</div>"


def _gallery(data: ResultsData, rows: list[dict[str, Any]], column: str, thumbs: dict[str, list[Thumb]],
             gallery_id: str) -> str:
    prompt_col = next((c for c in data.columns if c.lower() in ("prompt", "caption", "text")), None)
    tiles = []
    for r in rows:
        item_id = str(r["item_id"])
        prompt = f'<div class="prompt">{escape(str(r.get(prompt_col)))}</div>' if prompt_col else ""
        tiles.append(f'<div class="tile" data-item-id="{escape(item_id)}">{_strip_html(thumbs.get(item_id, []), item_id)}'
                     f'<div class="score">{escape(column)} = {_num(r[column])}</div>'
                     f'<div class="id">{escape(item_id)}</div>{prompt}</div>')
    return f'<div class="gallery" id="{gallery_id}">' + "".join(tiles) + "</div>"


def _failures(data: ResultsData) -> str:
    failed = [r for r in data.rows if not r["success"]]
    if not failed:
        return '<p class="muted">No item failed.</p>'
    items = "".join(f"<li><b>{escape(str(r['item_id']))}</b>: {escape(str(r.get('error') or 'no reason recorded'))}</li>"
                    for r in failed[:200])
    more = f"<p class='muted'>… and {len(failed) - 200} more.</p>" if len(failed) > 200 else ""
    return f"<ul id='failures'>{items}</ul>{more}"


def _items_table(data: ResultsData) -> str:
    heads = "".join(f'<th class="sortable" data-col="{escape(c)}">{escape(c)}</th>' for c in data.columns)
    return ('<div class="controls"><input type="search" id="filter" placeholder="Filter: any text in a row" '
            'aria-label="filter rows"><label><input type="checkbox" id="failed-only"> failed only</label>'
            '<span id="row-count" class="muted"></span></div>'
            f'<div class="scroll"><table id="items"><thead><tr><th>views</th>{heads}</tr></thead><tbody></tbody>'
            "</table></div>")


def page_data(data: ResultsData, thumbs: dict[str, list[Thumb]]) -> dict[str, Any]:
    """What the script needs: rows as arrays, thumbnails, which columns are numbers, leaderboards."""
    numeric = [c for c in data.columns
               if any(isinstance(r.get(c), float) for r in data.rows)
               and all(isinstance(r.get(c), float) for r in data.rows if r.get(c) not in ("", None))]
    return {
        "columns": data.columns,
        "rows": [[_json_cell(r.get(c)) for c in data.columns] for r in data.rows],
        "numeric": numeric,
        "metrics": data.metric_columns,
        "higher": data.higher_is_better,
        "thumbs": {k: [{"src": t.src, "label": t.label} for t in v] for k, v in thumbs.items()},
        "leaderboards": {g: [{k: _json_cell(v) for k, v in e.items()} for e in group_means(data, g)]
                         for g in data.group_columns},
    }


def render_html(data: ResultsData, thumbs: dict[str, list[Thumb]], options: ReportOptions) -> str:
    import gencritic

    title = options.title or f"gencritic report: {data.folder.resolve().name}"
    primary = data.primary
    generated = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    sections = [f'<section id="summary"><h2>Summary</h2>{_cards(data)}<h3>Metrics</h3>{_metric_table(data)}</section>',
                f'<section id="distributions"><h2>Distributions</h2>{_histograms(data)}</section>']
    if data.group_columns:
        opts = "".join(f'<option value="{escape(g)}">{escape(g)}</option>' for g in data.group_columns)
        sections.append('<section id="leaderboards"><h2>Leaderboards</h2><div class="controls"><label>Group by '
                        f'<select id="group-by">{opts}</select></label></div><table id="leaderboard"></table></section>')
    corr = correlation_rows(data)
    if corr:
        sections.append(f'<section id="human"><h2>Agreement with human ratings</h2>{_correlations(corr)}</section>')
    if primary:
        best = ranked(data, primary)
        n = options.top_n
        sections.append(f'<section id="best"><h2>Best {min(n, len(best))} by {escape(primary)}</h2>'
                        f'{_gallery(data, best[:n], primary, thumbs, "best-gallery")}</section>')
        sections.append(f'<section id="worst"><h2>Worst {min(n, len(best))} by {escape(primary)}</h2>'
                        f'{_gallery(data, best[::-1][:n], primary, thumbs, "worst-gallery")}</section>')
    sections.append(f'<section id="failed"><h2>Failures</h2>{_failures(data)}</section>')
    sections.append(f'<section id="table"><h2>All items</h2>{_items_table(data)}</section>')
    nav = "".join(f'<a href="#{sid}">{label}</a>' for sid, label in
                  [("summary", "Summary"), ("distributions", "Distributions"), ("leaderboards", "Leaderboards"),
                   ("human", "Human ratings"), ("best", "Best"), ("worst", "Worst"), ("failed", "Failures"),
                   ("table", "All items")]
                  if sid not in ("leaderboards", "human") or (sid == "leaderboards" and data.group_columns)
                  or (sid == "human" and corr))
    header = (f"<header><h1>{escape(title)}</h1><div class='meta'>{escape(str(data.folder))} · generated {generated} "
              f"· gencritic {escape(gencritic.__version__)}</div><nav>{nav}</nav></header>")
    body = header + "<main>" + "".join(sections) + "</main>"
    page = _asset("template.html")
    for key, value in (("{{CSS}}", _asset("report.css")), ("{{JS}}", _asset("report.js")),
                       ("{{TITLE}}", escape(title)), ("{{VERSION}}", escape(gencritic.__version__)),
                       ("{{DATA}}", _script_json(page_data(data, thumbs))), ("{{BODY}}", body)):
        page = page.replace(key, value)
    return page


def markdown_summary(data: ResultsData, top_n: int = 5) -> str:
    """A summary to paste into a paper draft or a PR: counts, metric table, leaderboards, correlations."""
    n = len(data.rows)
    ok = sum(1 for r in data.rows if r["success"])
    lines = [f"# gencritic results: {data.folder.resolve().name}", "",
             f"- items: {n}, scored: {ok}, failed: {n - ok}",
             f"- model: `{data.summary.get('model', 'unknown')}`"]
    if data.summary.get("settings", {}).get("metrics"):
        lines.append(f"- metrics: {', '.join(data.summary['settings']['metrics'])}")
    lines += ["", "| metric | n | mean | std | min | max | better |", "|---|---:|---:|---:|---:|---:|---|"]
    for m in metric_table_rows(data):
        lines.append(f"| {m['metric']} | {m['n']} | {_md(m['mean'])} | {_md(m['std'])} | {_md(m['min'])} | "
                     f"{_md(m['max'])} | {m['better']} |")
    for g in data.group_columns:
        board = group_means(data, g)
        if len(board) < 2:
            continue
        lines += ["", f"## Leaderboard by {g}", "", "| " + " | ".join([g, "n", *data.metric_columns]) + " |",
                  "|---|---:|" + "---:|" * len(data.metric_columns)]
        for e in board:
            lines.append("| " + " | ".join([str(e["group"]), str(e["n"]), *(_md(e[m]) for m in data.metric_columns)])
                         + " |")
    corr = correlation_rows(data)
    if corr:
        lines += ["", "## Agreement with human ratings", "", "| metric | rating | n | SRCC | PLCC | KRCC |",
                  "|---|---|---:|---:|---:|---:|"]
        lines += [f"| {c['metric']} | {c['human']} | {c['n']} | {_md(c['srcc'])} | {_md(c['plcc'])} | {_md(c['krcc'])} |"
                  for c in corr]
    if data.primary:
        worst = ranked(data, data.primary)[::-1][:top_n]
        if worst:
            lines += ["", f"## Worst {len(worst)} by {data.primary}", ""]
            lines += [f"1. `{r['item_id']}`: {_md(r[data.primary])}" for r in worst]
    failed = [r for r in data.rows if not r["success"]]
    if failed:
        lines += ["", f"## Failures ({len(failed)})", ""]
        lines += [f"- `{r['item_id']}`: {r.get('error') or 'no reason recorded'}" for r in failed[:20]]
    return "\n".join(lines) + "\n"


def _md(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def build_report(results: str | Path, out: str | Path, markdown: str | Path | None = None,
                 options: ReportOptions | None = None) -> ReportWritten:
    """Read ``results`` (a ``gencritic score`` or ``compare3d`` output folder) and write the HTML
    (and Markdown); a compare3d folder gets its pairs side by side (:mod:`gencritic.report.pairs`)."""
    opts = options or ReportOptions()
    from gencritic.report.pairs import is_compare3d_folder

    if is_compare3d_folder(Path(results)):
        return _pairs_report(Path(results), Path(out), markdown, opts)
    data = load_results(results)
    unknown = [c for c in opts.group_by if c not in data.columns]
    if unknown:
        raise InputError(f"--group-by {', '.join(unknown)}: no such column; columns are {', '.join(data.columns)}")
    data.group_columns = list(dict.fromkeys([*opts.group_by, *data.group_columns]))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    thumbs = thumbnails(data, out.parent.resolve(), views_dir=opts.views_dir, media_root=opts.media_root,
                        embed=opts.embed, size=opts.thumb_size, render=opts.render,
                        render_options=opts.render_options)
    atomic_write_text(out, printable(render_html(data, thumbs, opts)))  # a non-UTF-8 name shows as \xNN
    md_path = Path(markdown) if markdown is not None else None
    if md_path is not None:
        atomic_write_text(md_path, printable(markdown_summary(data, top_n=opts.top_n)))
    return ReportWritten(html=out, markdown=md_path, items=len(data.rows),
                         thumbnails=sum(len(v) for v in thumbs.values()))


def _pairs_report(folder: Path, out: Path, markdown: str | Path | None, opts: ReportOptions) -> ReportWritten:
    from gencritic.report.pairs import pairs_markdown, render_pairs_html

    out.parent.mkdir(parents=True, exist_ok=True)
    page, pairs, pictures = render_pairs_html(folder, out.parent.resolve(), embed=opts.embed,
                                              thumb_size=opts.thumb_size, title=opts.title)
    atomic_write_text(out, printable(page))
    md_path = Path(markdown) if markdown is not None else None
    if md_path is not None:
        atomic_write_text(md_path, printable(pairs_markdown(folder)))
    return ReportWritten(html=out, markdown=md_path, items=pairs, thumbnails=pictures)
