"""The report's content as blocks (heading, text, table, figure), written out as Markdown and as one HTML page."""

import base64
import html as htmlib
import math

import pandas as pd

from crossprune.report import damage
from crossprune.report.claims import COLUMNS, RULE, Judged, every_claim
from crossprune.report.claims_lm import language_pairs, lm_instruments
from crossprune.report.plots import FIGURES_OF
from crossprune.report.runs import UNFINISHED, config_columns, said

REFERENCES = ["A/acc", "chance_A", "A/probe_acc_raw", "A/probe_acc_init", "B/probe_acc_raw", "B/probe_acc_init",
              "B/fixed_head_acc", "chance_B", "dissimilarity/mmd", "dissimilarity/mmd_raw", "dissimilarity/pad"]
COLOURS = {"supported": "#1a7f37", "refuted": "#cf222e", "inconclusive": "#9a6700", "not measurable": "#8250df"}


def cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return "—"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def plain(value) -> str:
    """A config value as it was written: lists as lists, numbers without padding."""
    if isinstance(value, tuple):
        return repr(list(value))
    return f"{value:g}" if isinstance(value, float) and not math.isnan(value) else cell(value)


def interval(row) -> str:
    return f"{cell(row.effect)} [{cell(row.ci_low)}, {cell(row.ci_high)}]"


def document(study: str, table: pd.DataFrame, judged: Judged, figures: list[str], min_effect: float,
             confidence: float, provenance: dict[str, str]) -> list[tuple]:
    """What went wrong (the measured damages in words), verdicts, the rule, each claim with its figures and per-seed
    numbers, instruments, configs, provenance."""
    v = judged.verdicts.reindex(columns=COLUMNS).fillna({"cell": "all"})  # a table judged before a column existed
    adjusted = [f"{min(r.p_holm, r.p_refute_holm):.2g}" if r.p_holm == r.p_holm else "—" for r in v.itertuples()]
    verdicts = pd.DataFrame({"claim": v["claim"], "pair": v["pair"], "cell": v["cell"],
                             f"effect [{confidence:.0%} CI]": [interval(r) for r in v.itertuples()], "n": v["n"],
                             "P(improvement)": [cell(r.poi) for r in v.itertuples()], "adj. p": adjusted,
                             "verdict": v["verdict"], "seeds to decide": ["—" if r.seeds_needed != r.seeds_needed else f"{r.seeds_needed:.0f}" for r in v.itertuples()]})
    own = ", ".join(f"{c.name} {c.min_effect:g}{' nats' if c.metric.endswith('/loss') else ''}"  # e.g. a correlation
                    for c in every_claim() if c.min_effect is not None)
    blocks = [("h", 1, f"crossprune report · {study}"), *unfinished(table), *damage.section(table, confidence),
              ("h", 2, "Verdicts"), ("table", verdicts),
              ("h", 2, "The rule"), ("p", RULE),
              ("p", f"Effects are signed so that positive is the direction the claim states. Seeds are the independent "
                    f"units: matched differences (cells equal in every other config column) are averaged within a seed, "
                    f"then a {confidence:.0%} t-interval is taken over the per-seed means (capacity_shift: per seed, the "
                    f"Spearman ρ of the effect with dissimilarity over severities; the interval is over those ρ). Min effect {min_effect:g} (accuracy, "
                    f"0–1) except {own}; instruments must beat their references by more than {min_effect:g}."),
              ("h", 2, "Claims")]
    if v.empty:
        blocks.append(("p", "No claim has both of its arms in this study's runs (see the configs below)."))
    for claim in every_claim():
        rows = v[v["claim"] == claim.name]
        if rows.empty:
            continue
        blocks += [("h", 3, claim.name), ("p", claim.statement)]
        blocks += [("p", f"**{r.pair}{'' if r.cell == 'all' else f', {r.cell}'}**: {r.verdict} — effect {interval(r)}, "
                         f"n = {r.n}. {r.rule}" + (f". Note: {r.note}." if isinstance(r.note, str) and r.note else ""))
                   for r in rows.itertuples()]
        kinds = FIGURES_OF.get(claim.name, FIGURES_OF.get(claim.name.split(":")[0], ()))
        blocks += [("img", name) for name in figures if shows(name, kinds, set(rows["pair"]))]
        units = judged.units[judged.units["claim"] == claim.name].dropna(axis=1, how="all")
        units = units.astype({c: int for c in ("seed", "cells", "seeds") if c in units})  # NaN-free here: counts again
        blocks += [("p", "Per-unit effects behind the verdicts:"), ("table", units.drop(columns="claim"))]
    return blocks + instruments(table, min_effect) + configs(table) + [
        ("h", 2, "Provenance"), ("table", pd.DataFrame(list(provenance.items()), columns=["what", "value"]))]


def unfinished(table: pd.DataFrame) -> list[tuple]:
    """A line, when some of the study's points did not finish: how many, and the first reasons they failed."""
    left = table.attrs.get(UNFINISHED)
    if left is None or not left.count:
        return []
    why = f" The first reasons (crossprune.failure): {'; '.join(f'“{r}”' for r in left.reasons)}." if left.reasons else ""
    return [("p", f"**{said(left)}: their runs are not read.**{why}")]


def shows(figure: str, kinds: tuple[str, ...], pairs: set[str]) -> bool:
    """A claim's section shows its kinds of figure: the study-wide ones, and those of the pairs it has rows for."""
    return figure in kinds or any(figure == f"{kind}_{pair}" for kind in kinds for pair in pairs)


def instruments(table: pd.DataFrame, min_effect: float) -> list[tuple]:
    """train_a's references per pair and severity, and a line for every saturated instrument."""
    lm = language_pairs(table)  # read through their own head on both domains: no probes, no fixed head
    train_a = table[table["stage"] == "train_a"].reindex(columns=["pair.name", "pair.severity", *REFERENCES, *(["B/acc"] if lm else [])])
    means = train_a.groupby(["pair.name", "pair.severity"], dropna=False).mean(numeric_only=True).reset_index()
    blocks = [("h", 2, "Instrument references (train_a, mean over seeds)"), ("table", means.dropna(axis=1, how="all"))]
    for r in means.to_dict("records"):
        where = r["pair.name"] + ("" if pd.isna(r["pair.severity"]) else f" severity {r['pair.severity']:g}")
        beaten = max(r["B/probe_acc_raw"], r["B/probe_acc_init"]) if pd.notna([r["B/probe_acc_raw"], r["B/probe_acc_init"]]).all() else math.nan
        checks = lm_instruments(r) if r["pair.name"] in lm else [  # (instrument, its value, what it must beat, consequence)
            ("train_a B/fixed_head_acc", r["B/fixed_head_acc"], beaten, "max(B/probe_acc_raw, B/probe_acc_init)",
             "capacity claims there are not measurable"),
            ("train_a A/acc", r["A/acc"], r["chance_A"], "chance", "hierarchy and sanity there are not measurable"),
        ]
        for name, value, ref, ref_name, consequence in checks:
            if pd.isna(value) or pd.isna(ref):
                blocks.append(("p", f"**Instrument not logged — {where}:** {name} or {ref_name} is missing."))
            elif not value - ref > min_effect:
                blocks.append(("p", f"**Saturated instrument — {where}:** {name} {cell(value)} does not beat {ref_name} = "
                                    f"{cell(ref)} by more than {min_effect:g}; {consequence}."))
    return blocks


def configs(table: pd.DataFrame) -> list[tuple]:
    """Which config columns the study swept (with their values) and which it held fixed."""
    parents = table.drop_duplicates("parent_id")[[*config_columns(table), "order"]]
    values = {c: sorted(parents[c].map(plain).unique()) for c in parents}
    swept = pd.DataFrame([(c, ", ".join(v)) for c, v in values.items() if len(v) > 1], columns=["column", "values"])
    fixed = pd.DataFrame([(c, v[0]) for c, v in values.items() if len(v) == 1], columns=["column", "value"])
    return [("h", 2, f"Configs ({len(parents)} pipeline runs)"), ("p", "Swept:"), ("table", swept), ("p", "Fixed:"), ("table", fixed)]


def markdown(blocks: list[tuple]) -> str:
    return "\n\n".join(MD[b[0]](*b[1:]) for b in blocks) + "\n"


def md_table(frame: pd.DataFrame) -> str:
    rows = [[cell(v).replace("|", "\\|") for v in row] for row in frame.itertuples(index=False)]
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows]) if len(frame.columns) else "(none)"


MD = {
    "h": lambda level, text: "#" * level + " " + text,
    "p": lambda text: text,
    "table": md_table,
    "list": lambda items: "\n".join(f"- {item}" for item in items),
    "img": lambda name: f"![{name}]({name}.png)",
}


def html(blocks: list[tuple], images: dict[str, bytes], title: str) -> str:
    """One self-contained page: the same blocks, figures inline as base64 PNGs."""
    body = "\n".join(HTML[b[0]](*b[1:], images=images) for b in blocks)
    return (f"<!doctype html>\n<html><head><meta charset='utf-8'><title>{htmlib.escape(title)}</title><style>{CSS}</style>"
            f"</head><body>\n{body}\n</body></html>\n")


def html_table(frame: pd.DataFrame, images=None) -> str:
    head = "".join(f"<th>{htmlib.escape(str(c))}</th>" for c in frame.columns)
    rows = "".join("<tr>" + "".join(html_cell(v) for v in row) + "</tr>" for row in frame.itertuples(index=False))
    return f"<table><tr>{head}</tr>{rows}</table>"


def html_cell(value) -> str:
    colour = COLOURS.get(value) if isinstance(value, str) else None
    style = f" style='color:{colour};font-weight:bold'" if colour else ""
    return f"<td{style}>{htmlib.escape(cell(value))}</td>"


def bold(text: str) -> str:
    parts = htmlib.escape(text).split("**")
    return "".join(f"<b>{p}</b>" if i % 2 else p for i, p in enumerate(parts))


HTML = {
    "h": lambda level, text, images: f"<h{level}>{htmlib.escape(text)}</h{level}>",
    "p": lambda text, images: f"<p>{bold(text)}</p>",
    "table": html_table,
    "list": lambda items, images: "<ul>" + "".join(f"<li>{bold(item)}</li>" for item in items) + "</ul>",
    "img": lambda name, images: f"<img alt='{name}' src='data:image/png;base64,{base64.b64encode(images[name]).decode()}'>",
}
CSS = ("body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
       "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;font-size:90%}"
       "img{max-width:100%;display:block;margin:1em 0}")
