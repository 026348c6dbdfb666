"""The Markdown of ``benchmark position-bias`` (``benchmarks.position_bias`` writes the JSON)."""

from __future__ import annotations

from .report import machine_markdown, markdown_table

HELD_OUT = "held-out folds"  # report["fitted_on"]: fold models' predictions on their folds
OWN_TRAIN = "own training sentences"  # ...: each model's predictions on its own training part
TRAIN = "train"  # ...: no fold models; the given model's training sentences, choice included
START_SLACK = 5.0  # points: the aim for the top-1 start-at-0 share vs the ground truth's
METRICS = ("R1@0.5", "R10@0.5", "R100@0.5", "R1@0.7", "R10@0.7", "R100@0.7")
SINGLE = ("single_R1@0.5", "single_R1@0.7", "prior_single_R1@0.5", "prior_single_R1@0.7")


def choice_text(report: dict) -> str:
    """How the folds behind the choice were made."""
    if report.get("fitted_on") == OWN_TRAIN:
        return (f"The choice, made on train only: mean over {report['n_folds']} video-disjoint "
                "folds of train, each fold's sentences searched over its own videos by a search "
                "checkpoint trained without that fold (sentences it never trained on, as val's), "
                "with a prior fitted on that checkpoint's own training sentences (searched in "
                "chunks of videos the size of a fold). The chosen prior is then fitted the same "
                "way on the checkpoint trained on all of train, for that checkpoint.")
    if report.get("fitted_on") == HELD_OUT:
        return (f"The choice, made on train only: mean over {report['n_folds']} video-disjoint "
                "folds of train, each fold's sentences searched over its own videos by a search "
                "checkpoint trained without that fold (sentences it never trained on, as val's), "
                "the prior fitted on the other folds' predictions. The chosen prior is then "
                "fitted on every fold's predictions and given to the checkpoint trained on all "
                "of train.")
    return (f"The choice, made on train only: mean over the {report['n_folds']} video-disjoint "
            "folds of train (each fold's sentences over its own videos, the prior fitted on the "
            "others). The search model was trained on these sentences, so the folds are easier "
            "than val; they choose the strength, val measures it.")


BIAS = ("truth_start0", "top1_start0", "truth_length", "top1_length", "top10_start0",
        "top10_most_from_one_video")


def own_bias_markdown(report: dict) -> list[str]:
    """Each model's bias on its own training sentences, where the prior was fitted on them."""
    if not report.get("own_train_bias"):
        return []
    return ["Each model's top-1 start-at-0 share without a prior on its own training sentences "
            "(searched in the chunks its prior is fitted on; mean over chunks, percent):",
            markdown_table(report["own_train_bias"], ["model", "top1_start0", "truth_start0"])]


def markdown(report: dict) -> str:
    """The report as Markdown."""
    val, size = report["val"], report["val_size"]
    chosen = report["chosen_strength"]
    rows = [{"setting": "without the prior", **val["truth"], **val["before"]},
            {"setting": "no prior (chosen)" if chosen == "none" else
             f"with the prior (strength {chosen})", **val["truth"], **val["after"]}]
    return "\n\n".join([
        "# Position and length bias of corpus search",
        f"`{report['config']['command']}`",
        f"Val ({size['sentences']} sentences over the {size['videos']} val videos): the top-1 "
        "and top-10 moments against the ground truth (start-at-0 shares in percent, lengths in "
        "seconds):",
        markdown_table(rows, ["setting", *BIAS]),
        "The cause, on val without the prior: each term of the one inner product alone "
        "(the FVMR term is phi_m . phi_s; the video-text term beta s_v; the constant column "
        "carries the hub correction):",
        markdown_table(report["causes"], ["search vectors", "top1_start0", "top1_length",
                                          "top10_start0", "top10_most_from_one_video"]),
        "Val corpus R@k and single-video R1 of the fast path (percent; a search within one video "
        "leaves the prior out, single_R1; prior_single_R1: with it):",
        markdown_table(rows, ["setting", *METRICS, *SINGLE]),
        choice_text(report),
        markdown_table(report["fold_means"], ["setting", *BIAS, *METRICS, *SINGLE]),
        *own_bias_markdown(report),
        f"Rule: among the settings (no prior, or a strength) whose mean top-1 start-at-0 share "
        f"is within {START_SLACK:g} points of the folds' ground truth, the best mean R10@0.5 + "
        "R10@0.7; if none is, the closest. Chosen: "
        f"{chosen}, decided by: {report['decided_by']} (fitting: {report['rule']}; steps and "
        "rate are fixed defaults, not chosen).",
        machine_markdown(report["machine"]),
    ]) + "\n"
