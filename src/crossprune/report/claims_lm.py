"""The language-model claims (conf/study/lm_calibration.yaml): the calibration data of post-training pruning as the
axis, read at the prune stage (Wanda, SparseGPT; no fine-tuning).

The metric is the mean next-token loss on a domain's test text, in nats: the log of its perplexity, so an effect is
a log ratio of perplexities (0.01 ≈ 1% perplexity) and lower is better. Each effect is signed so that positive is
what the claim states: calibrated on A minus calibrated on B, best single source plus the margin minus the mix, the
gap at the highest sparsity minus the gap at the lowest.
"""

import pandas as pd

from crossprune.report import stats
from crossprune.report.claims import Arm, Claim, Instrument, unlike

LM = {"model": "CausalLM", "score_data": unlike("none")}  # language models, data-dependent criteria (not magnitude)
SINGLE = {"score.data": lambda v: v in ("A", "B")}
MARGIN = 0.02  # nats: the mix is "within" 2% perplexity of the best single source
LM_READS_A = Instrument("train_a", "A/acc", ("chance_A",))  # the dense LM predicts A's next token beyond guessing
LM_READS_B = Instrument("train_a", "B/acc", ("chance_B",))  # ... and B's (chance: always its most frequent token)


def within_margin(claim, treat, base, keys, table) -> pd.DataFrame:
    """Per cell, min(calibrated on A, calibrated on B) + MARGIN − calibrated on the mix (cells where both single
    sources ran); `treat` is the best plus the margin and `base` the mix, so treat > base is the claim."""
    m = claim.metric
    if m not in treat or m not in base:
        return pd.DataFrame(columns=[*keys, "treat", "base", "diff"])
    single = base.assign(_cell=stats.cell(base, keys)).groupby("_cell").agg(best=(m, "min"), sources=("score.data", "nunique"))
    best = single.loc[single["sources"] == 2, "best"]
    mix = treat.assign(_cell=stats.cell(treat, keys), base=treat[m])[["_cell", "base", *keys]].drop_duplicates("_cell")
    mix["treat"] = mix["_cell"].map(best) + MARGIN
    return mix.assign(diff=mix["treat"] - mix["base"]).dropna(subset=["diff"])


def gap_growth(claim, treat, base, keys, table) -> pd.DataFrame:
    """Per cell less its sparsity: the A−B calibration gap at the highest sparsity minus the gap at the lowest."""
    gaps = stats.matched(treat, base, keys, claim.metric)
    rest = [k for k in keys if not k.endswith("sparsity")]  # prune.sparsity and its copies (criterion.*.sparsity)
    if gaps.empty or "prune.sparsity" not in gaps:
        return pd.DataFrame(columns=[*rest, "treat", "base", "diff"])
    rows = []
    for _, g in gaps.groupby(stats.cell(gaps, rest)):
        if g["prune.sparsity"].nunique() >= 2:
            g = g.sort_values("prune.sparsity")
            rows.append({**g.iloc[0][rest].to_dict(), "treat": g["diff"].iloc[-1], "base": g["diff"].iloc[0]})
    out = pd.DataFrame(rows, columns=[*rest, "treat", "base"])
    return out.assign(diff=out["treat"] - out["base"])


LM_CLAIMS = (
    Claim("lm_calibration_cost", "Calibrating a pruned language model on A costs B perplexity: calibrated on B, its B "
          "loss is lower (log perplexity, pruned, not fine-tuned)", "B/loss",
          Arm("prune", LM), Arm("prune", {**LM, "score.data": "B"}), LM_READS_B, ("score.data",), min_effect=0.01),
    Claim("lm_mix_near_best_A", f"Calibrating on a mix of A and B keeps A's perplexity within {MARGIN:g} nats "
          f"(≈{MARGIN:.0%}) of the better single source", "A/loss",
          Arm("prune", {**LM, "score.data": "mix"}), Arm("prune", {**LM, **SINGLE}), LM_READS_A, ("score.data",),
          differences=within_margin, min_effect=0.0),
    Claim("lm_mix_near_best_B", f"Calibrating on a mix of A and B keeps B's perplexity within {MARGIN:g} nats "
          f"(≈{MARGIN:.0%}) of the better single source", "B/loss",
          Arm("prune", {**LM, "score.data": "mix"}), Arm("prune", {**LM, **SINGLE}), LM_READS_B, ("score.data",),
          differences=within_margin, min_effect=0.0),
    Claim("lm_gap_grows", "The B perplexity that calibrating on A costs grows with sparsity: the gap at the highest "
          "sparsity exceeds the gap at the lowest", "B/loss",
          Arm("prune", LM), Arm("prune", {**LM, "score.data": "B"}), LM_READS_B, ("score.data",),
          differences=gap_growth, min_effect=0.01),
)


def language_pairs(table: pd.DataFrame) -> set[str]:
    """The pairs whose runs are language models: their instruments are LM_READS_A and LM_READS_B."""
    return set(table.loc[table["model"] == LM["model"], "pair.name"]) if "model" in table else set()


def lm_instruments(r: dict) -> list[tuple]:
    """(instrument, its value, what it must beat, its name, what fails with it) in a language-model pair's mean
    train_a row."""
    return [("train_a A/acc", r["A/acc"], r["chance_A"], "chance", "lm_mix_near_best_A there is not measurable"),
            ("train_a B/acc", r["B/acc"], r["chance_B"], "chance", "the LM claims on B there are not measurable")]
