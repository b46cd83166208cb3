"""Compose the report: sections of text, tables and figures from the loaded inputs.

    build_report(root, out_dir, ReportOptions()) -> ReportResult

writes out_dir/report.md, out_dir/report.html (figures embedded) and out_dir/figures/*.png.
The prose is written for a reader who has not seen the paper: each section says what is
measured and what its numbers mean.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import pandas as pd

from pipeline.reports import examples, figures
from pipeline.reports.document import Document, to_html, to_markdown
from pipeline.reports.inputs import ENCODER_TITLES, Inputs, load_inputs
from pipeline.reports.pseudonyms import Pseudonymizer

PAPER_SLOPES = {"text": ("0.07 s per added name", 0.07), "image": ("1.55 s per added face", 1.55)}
FIGURES = "figures"


@dataclass
class ReportOptions:
    pseudonymize: bool = True
    salt: str = "defending-privacy-report"
    dpi: int = 110
    image_recipes: dict | None = None       # defend.image_recipes, to name the image recipes
    runs: set[str] | None = None            # defenses the params ask for ("text-k4", ...); None = all found
    trials: Path | None = None              # CSV of defense settings tried during development


@dataclass
class ReportResult:
    markdown: Path
    html: Path
    figures: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------- formatting
def _num(x, fmt: str = "{:.2f}", missing: str = "–") -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return missing
    return fmt.format(x)


def _pct(x, digits: int = 1) -> str:
    return _num(None if x is None else 100 * x, "{:.%df} %%" % digits)


def _count_pct(count, pct) -> str:
    if count is None:
        return "–"
    return f"{count} ({_num(pct, '{:.1f}')} %)"


def _title(encoder: str) -> str:
    return ENCODER_TITLES.get(encoder, encoder).capitalize()


def _list(names: Sequence[str], limit: int = 8) -> str:
    names = list(names)
    if len(names) <= limit:
        return ", ".join(names) or "–"
    return ", ".join(names[:limit]) + f", … ({len(names) - limit} more)"


# ----------------------------------------------------------------------------- sections
class _Builder:
    def __init__(self, inp: Inputs, out_dir: Path, opt: ReportOptions, anon: Pseudonymizer):
        self.inp, self.out, self.opt, self.anon = inp, out_dir, opt, anon
        self.doc = Document("Defending our privacy with backdoors: pipeline report")
        self.figs: list[Path] = []
        self.notes: list[str] = []

    def fig(self, path: Path | None, caption: str, missing: str) -> None:
        if path is None:
            self.doc.p(f"*{missing}*")
            self.notes.append(missing)
            return
        self.figs.append(path)
        self.doc.figure(f"{FIGURES}/{path.name}", caption)

    def fpath(self, name: str) -> Path:
        return self.out / FIGURES / name

    # -- intro
    def intro(self) -> None:
        d = self.doc
        d.p("This report summarises one run of the pipeline that reproduces *Defending Our Privacy "
            "With Backdoors* (Hintersdorf et al., ECAI 2024). A CLIP model, which matches images with "
            "text, is first attacked with the **Identity Inference Attack (IDIA)**: shown photos of a "
            "person, can the model pick the person's real name out of a list of names? If it can, the "
            "person was very likely in its training data. The **defense** then fine-tunes a copy of one "
            "of CLIP's two encoders with a backdoor so that K chosen people are forgotten: the text "
            f"encoder learns to read their **name** as a neutral target phrase{self._target_phrase()}, "
            "the image encoder learns to see "
            "their **face** as an average, anonymous face. A frozen copy of the original encoder "
            "(the teacher) keeps everything else unchanged. The attack is then run again.")
        if self.opt.pseudonymize:
            d.p("Every person's name in this report is replaced by a stable pseudonym "
                "(`Person` + the first hex digits of a salted SHA-256 of the name), so the report can be "
                "shared without saying who was removed. The same name gets the same pseudonym in every "
                "run with the same salt (param `report.salt`).")
        bullets = []
        for enc in self.inp.encoders():
            runs = self.inp.runs_of(enc)
            kmax = max(r.k for r in runs)
            for r in (r for r in runs if r.k == kmax):
                e = r.evaluation
                still = None if e.get("tpr_removed") is None else round(e["tpr_removed"] * r.k)
                zs = ", ".join(f"{b} {_num(100 * v.get('top1_change', float('nan')), '{:+.1f}')} pp"
                               for b, v in sorted((e.get("zeroshot") or {}).items()))
                bullets.append(
                    f"**{_title(enc)}, K = {r.k}** ({r.variant}): the attack still identifies "
                    f"{_num(still, '{}')} of {r.k} removed people (TPR {_num(e.get('tpr_removed'))}); "
                    f"{_num(e.get('wrongfully_unlearned'), '{}')} of {_num(e.get('others_identified_before'), '{}')} "
                    f"other identified members were lost ({_num(e.get('wrongfully_unlearned_pct'), '{:.1f}')} %); "
                    f"zero-shot top-1 change: {zs or '–'}.")
        if bullets:
            d.p("**Key results** at the largest K of each defense:")
            d.ul(bullets)
        else:
            d.p("*No defended model has been evaluated yet (no `metrics/evaluate/*.json`); the report "
                "shows the data and the attack on the base model only.*")
            self.notes.append("no evaluated runs")

    def _target_phrase(self) -> str:
        targets = sorted({r.defense["text"].get("target") for r in self.inp.runs
                          if r.defense.get("text") and r.defense["text"].get("target")})
        return f" (in this run \"{targets[0]}\")" if len(targets) == 1 else ""

    # -- data
    def data(self) -> None:
        d, inp = self.doc, self.inp
        d.h(1, "1. Data")
        d.p("Two downloads feed the pipeline. **FaceScrub** supplies photos of the people: whole photos "
            "for the attack and bounding-box face crops as triggers for the image defense. A "
            "**LAION-style** list of image URLs and captions supplies the pretraining data of the demo "
            "model and the clean images and captions the defenses train on. Links die and files change, "
            "so every row is accounted for: downloaded, or lost and why.")
        rows = []
        for label, m in (("FaceScrub", inp.download_facescrub), ("LAION", inp.download_laion)):
            if not m:
                rows.append([label, "–", "–", "–", "report missing"])
                continue
            reasons = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in sorted((m.get("failed_by_reason") or {}).items()) if v)
            rows.append([label, _num(m.get("rows_read"), "{}"), _num(m.get("downloaded"), "{}"),
                         _num(m.get("failed"), "{}"), reasons or "none"])
        d.table(["download", "rows read", "downloaded", "lost", "lost by reason"], rows, "lrrrl")
        fs = inp.download_facescrub or {}
        if fs:
            extra = [f"identities in the lists: {_num(fs.get('identities'), '{}')}; with at least one photo: "
                     f"{_num(fs.get('identities_downloaded'), '{}')}; with at least {_num(fs.get('min_photos'), '{}')} "
                     f"photos: {_num(fs.get('identities_with_min_photos'), '{}')}"]
            if fs.get("malformed_rows_total"):
                extra.append(f"malformed rows in the lists: {fs['malformed_rows_total']}")
            if inp.download_laion and inp.download_laion.get("shards") is not None:
                extra.append(f"LAION webdataset shards written: {inp.download_laion['shards']}")
            d.ul(extra)
        s = inp.splits
        d.p("The **splits** stage divides each person's photos in two disjoint halves, one for the "
            "attack and one for the face triggers. **Members** are people whose name occurs in the "
            "pretraining captions (1 to 300 times); **non-members** never occur there, so any time the "
            "attack \"recognises\" one of them is a false alarm. The candidate list mixes the real names "
            "with random filler names, and the clean caption pool excludes every caption that names "
            "one of the people.")
        if s:
            dropped = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in sorted((s.get("dropped") or {}).items()) if v)
            d.table(["quantity", "value"], [
                ["members (in the captions)", _num(s.get("members"), "{}")],
                ["non-members (never in the captions)", _num(s.get("nonmembers"), "{}")],
                ["attack photos", _num(s.get("idia_photos"), "{}")],
                ["trigger faces", _num(s.get("trigger_faces"), "{}")],
                ["candidate names", _num(s.get("candidates"), "{}")],
                ["clean captions for training / held out",
                 f"{_num(s.get('clean_captions_train'), '{}')} / {_num(s.get('clean_captions_heldout'), '{}')}"],
                ["identities dropped", dropped or "none"]], "lr")
        else:
            d.p("*metrics/splits.json is missing.*")

    # -- attack before
    def attack(self) -> None:
        d, m = self.doc, self.inp.idia_before
        d.h(1, "2. The attack on the undefended model")
        tau = (m or {}).get("tau", 1)
        templates = (m or {}).get("templates", 21)
        d.p(f"For every person and every one of {templates} prompt templates (\"a photo of {{name}}\", "
            f"\"{{name}} at a gala\", …) the attack asks the model which of the candidate names fits each "
            f"of the person's photos best; the photos then vote. A template counts as correct when the "
            f"majority picks the true name, and the person is **identified** (\"was in the training "
            f"data\") with at least τ = {tau} correct template(s). The **TPR** is the share of members "
            f"identified: how much the model gives away about who it was trained on. The **FPR** is "
            f"the share of non-members identified: the attack's false alarms.")
        if not m:
            d.p("*metrics/idia_before.json is missing.*")
            return
        d.table(["", "people", "identified", "rate"], [
            ["members", _num(m.get("members"), "{}"), _num(m.get("identified_members"), "{}"),
             f"TPR {_num(m.get('tpr'))}"],
            ["non-members", _num(m.get("nonmembers"), "{}"), _num(m.get("identified_nonmembers"), "{}"),
             f"FPR {_num(m.get('fpr'))}"]], "lrrr",
            caption=f"{_num(m.get('candidates'), '{}')} candidate names, {templates} templates, τ = {tau}.")
        removed = self._largest_removed()
        path = figures.attack_before(self.inp, self.fpath("attack_before.png"), self.opt.dpi, removed)
        self.fig(path, f"Correct templates (of {templates}) per person against how often the name occurs "
                 "in the pretraining captions. Above the dashed line the attack says \"in the training "
                 "data\". Non-members (left) have count 0 and should stay below the line; people named "
                 "more often are usually easier to identify."
                 + (" Circled: the people the largest-K defense removes." if removed else ""),
                 "No per-identity attack table (data/idia_before/identities.csv).")

    def _largest_removed(self) -> list[str]:
        if not self.inp.runs:
            return []
        kmax = max(r.k for r in self.inp.runs)
        return sorted({n for r in self.inp.runs if r.k == kmax for n in r.removed})

    # -- base model
    def base(self) -> None:
        d, inp = self.doc, self.inp
        d.h(1, "3. The base model")
        d.p("This is the CLIP model the pipeline attacks and defends (in the demo a small CLIP trained "
            "from scratch on the downloaded pairs; with the paper's settings OpenCLIP ViT-B/32 trained "
            "on LAION-400M). Its loss is the contrastive CLIP loss: it falls as the model learns to tell "
            "which caption belongs to which image in a batch.")
        b = inp.base_model
        if b:
            rows = [["training steps", _num(b.get("steps"), "{}")],
                    ["training time", _num(b.get("train_seconds"), "{:.0f} s")],
                    ["seconds per step", _num(b.get("seconds_per_step"), "{:.2f}")],
                    ["final loss", _num(b.get("final_loss"), "{:.3f}")],
                    ["parameters", _num(b.get("params_millions"), "{:.2f} M")],
                    ["training pairs", _num(b.get("samples"), "{}")],
                    ["device", str(b.get("device", "–"))]]
            d.table(["base model", "value"], rows, "lr")
        self.fig(figures.base_loss(inp, self.fpath("base_model_loss.png"), self.opt.dpi),
                 "Pretraining loss of the base model per step (thin) and its moving mean (thick).",
                 "No pretraining loss curve (plots/base_model_loss.csv, absent when a pretrained model is used).")
        d.p("**Zero-shot accuracy** measures general usefulness: the model labels benchmark images by "
            "comparing each image with text prompts of every class name, without training on the "
            "benchmark. Top-1 counts the right class ranked first, top-5 among the first five. A good "
            "defense leaves these numbers where the base model has them.")
        u = inp.utility_before
        if u:
            d.table(["benchmark", "top-1", "top-5"],
                    [[bench, _pct(v.get("top1")), _pct(v.get("top5"))] for bench, v in sorted(u.items())], "lrr",
                    caption="Zero-shot accuracy of the base model.")
        else:
            d.p("*metrics/utility_before.json is missing.*")

    # -- removal
    def _reg_statement(self) -> str:
        """Which weight-regulariser values were run, per trained tower (text / image)."""
        values: dict[str, set[float]] = {}
        for r in self.inp.runs:
            for tower in ("text", "image"):
                if r.weight_reg(tower) is not None:
                    values.setdefault(tower, set()).add(r.weight_reg(tower))
        if not values:
            return ""
        text = ("The weight regulariser λ·Σ‖θ_student − θ_teacher‖ keeps the fine-tuned encoder close to "
                "the original; the paper runs every sweep with it and without it (λ = 0). ")
        single = {t: v for t, v in values.items() if len(v) == 1}
        several = {t: v for t, v in values.items() if len(v) > 1}
        if single:
            text += ("Only one value was run for the " + " and the ".join(
                f"{t} encoder (λ = {next(iter(v)):g})" for t, v in sorted(single.items()))
                + ", so this report has no comparison with and without the regulariser there. ")
        for t, v in sorted(several.items()):
            text += (f"The {t} encoder was run with λ = " + ", ".join(f"{x:g}" for x in sorted(v))
                     + "; each value is its own line in the figures and its own row in the tables"
                     + (" (λ = 0: no regulariser). " if 0.0 in v else ". "))
        return text.strip()

    def removal(self) -> None:
        d, inp = self.doc, self.inp
        d.h(1, "4. Does the defense remove the people?")
        seeds = sorted({str(r.seed) for r in inp.runs if r.seed is not None})
        d.p("Each defense removes K people at once; the sets are nested (the K = 4 set contains the "
            "K = 1 set). Only people the attack identified before are chosen, so before the defense the "
            "TPR on them is 1 by construction (dotted line). **TPR after** is the share of the K people "
            "the attack still identifies: 0 means every one of them is forgotten. **FNR** = 1 − TPR is the "
            "paper's way of saying the same (it reports FNR above 0.99 for removed names). "
            + (f"Runs with several seeds ({', '.join(seeds)}) are averaged per K. " if len(seeds) > 1 else "")
            + self._reg_statement())
        self.fig(figures.idia_vs_k(inp, self.fpath("idia_vs_k.png"), self.opt.dpi),
                 "IDIA true-positive rate (filled) and false-negative rate (hollow) on the removed people "
                 "after the defense, against K, one panel per defended encoder.",
                 "No evaluated defense runs.")
        self._combined_remark()
        d.h(2, "Utility: zero-shot accuracy")
        d.p("The same zero-shot benchmarks as for the base model (dashed line), now with the defended "
            "models. A line that stays on the dashed one means the defense costs no general utility.")
        self.fig(figures.zeroshot_vs_k(inp, self.fpath("zeroshot_vs_k.png"), self.opt.dpi),
                 "Zero-shot top-1 (left) and top-5 (right) accuracy per benchmark against K; colour = "
                 "defended encoder, dashed black = base model.",
                 "No zero-shot results of defended models.")

    def _combined_remark(self) -> None:
        """Say so when the combined model is found more often than the better single tower."""
        tpr = {(r.encoder, r.k): r.evaluation.get("tpr_removed") for r in self.inp.runs}
        worse = []
        for (enc, k), both in sorted(tpr.items(), key=lambda item: item[0][1]):
            singles = [tpr.get((e, k)) for e in ("text", "image")]
            if enc != "both" or both is None or None in singles:
                continue
            if both > min(singles) + 1e-9:
                worse.append(f"K = {k}: {_num(both)} against text {_num(singles[0])} and image {_num(singles[1])}")
        if not worse:
            return
        target = next((r.defense["text"].get("target") for r in self.inp.runs
                       if r.encoder == "both" and r.defense.get("text")), None)
        self.doc.p("**The combined model is identified more often than the better single tower** ("
                   + "; ".join(worse) + "). Each defense sends its trigger to a neutral target: the name to "
                   f"the phrase \"{target or 'the text target'}\", the face to the average face. When the "
                   "average face matches that phrase better than any other candidate name, the attack on "
                   "the combined model lands on the removed name again (`python scripts/target_check.py` counts "
                   "the templates where it does, without training). A text target the average face does not "
                   "match, such as a placeholder name that no candidate shares a word with, avoids this; "
                   "the settings tried are in the table at the end.")

    # -- collateral / table
    def collateral(self) -> None:
        d, inp = self.doc, self.inp
        d.h(1, "5. Collateral damage")
        d.p("A defense should forget only the K chosen people. **Wrongfully unlearned** counts the other "
            "members the attack identified before but no longer identifies after (percent of those "
            "identified before). **Newly recalled** counts members missed before and identified after "
            "(percent of those missed before). **FPR after** is the false-alarm rate on non-members "
            "after the defense. **sim_clean** is the mean cosine similarity between the original and "
            "the defended encoder's embeddings of held-out clean captions (text) or images (image): "
            "1 means the encoder is unchanged on ordinary inputs (the paper reports > 0.99 for text). "
            "Zero-shot top-1 is shown with its change from the base model in percentage points.")
        benches = inp.benchmarks()
        for enc in inp.encoders():
            runs = inp.runs_of(enc)
            header = ["K", "recipe", "TPR removed", "wrongfully unlearned", "newly recalled", "FPR after"] + \
                [f"{b} top-1 (Δ)" for b in benches] + ["sim_clean"]
            rows = []
            for r in sorted(runs, key=lambda r: (r.k, r.variant, r.name)):
                e = r.evaluation
                zs = e.get("zeroshot") or {}
                sims = []
                for key, label in (("text_similarity", "text"), ("image_similarity", "image")):
                    if (e.get(key) or {}).get("sim_clean") is not None:
                        v = _num(e[key]["sim_clean"], "{:.4f}")
                        sims.append(f"{label} {v}" if enc == "both" else v)
                rows.append([str(r.k), r.variant, _num(e.get("tpr_removed")),
                             _count_pct(e.get("wrongfully_unlearned"), e.get("wrongfully_unlearned_pct")),
                             _count_pct(e.get("newly_recalled"), e.get("newly_recalled_pct")),
                             _num(e.get("fpr"))]
                            + [f"{_pct(zs[b].get('top1'))} ({_num(100 * zs[b]['top1_change'], '{:+.1f}') if zs[b].get('top1_change') is not None else '–'})"
                               if b in zs else "–" for b in benches]
                            + [" / ".join(sims) or "–"])
            d.h(2, _title(enc))
            d.table(header, rows, "rl" + "r" * (len(header) - 2))
        if not inp.runs:
            d.p("*No evaluated runs.*")
            return
        d.h(2, "Trade-off")
        d.p("Every run as one point: how many removed people the attack still finds (up) against how "
            "many other people were forgotten by mistake (right). The ideal defense sits in the bottom "
            "left corner. Points with the same values share one label.")
        self.fig(figures.tradeoff(inp, self.fpath("tradeoff.png"), self.opt.dpi),
                 "IDIA TPR on the removed people against wrongfully unlearned members (%), per run, "
                 "coloured by K, marker = recipe; the best defense sits at the bottom left.", "No runs for the trade-off figure.")

    # -- development trials
    def trials(self) -> None:
        path = self.opt.trials
        if path is None or not Path(path).is_file():
            return
        trials = pd.read_csv(path)
        d = self.doc
        d.h(2, "Settings tried during development")
        d.p("Before the defaults were chosen, other settings were measured on the default demo world "
            "(seed 1234, defense seed 0) or, where marked, by the throw-away feasibility prototype. "
            "Each row is one run: the share of removed people the attack still finds, and the share of "
            "the other identified members it lost. They come from a committed table "
            f"(`{Path(path).as_posix()}`), not from this pipeline run.")
        d.table(["encoder", "setting", "K", "TPR removed", "wrongfully unlearned", "source"],
                [[r.encoder, r.setting, str(r.k), _num(r.tpr_removed),
                  _pct(r.wrongfully_unlearned_pct / 100), r.source] for r in trials.itertuples()],
                "lllrrl")
        self.fig(figures.trials_tradeoff(trials, self.fpath("trials_tradeoff.png"), self.opt.dpi),
                 "Settings tried: IDIA TPR on the removed people against wrongfully unlearned members; "
                 "marker size grows with K.", "No trials to plot.")

    # -- training
    def training(self) -> None:
        d, inp = self.doc, self.inp
        d.h(1, "6. Training cost and loss curves")
        d.p("**Run time** is the wall time of the defense's training loop only (no model loading, no "
            "evaluation). The paper (Figure 5, one GPU) found it grows roughly linearly with the number of "
            "people removed: about 0.07 s more per added name (text) and 1.55 s more per added face "
            "(image). The slope below is the least-squares line through this run's times. Hardware, step "
            "counts and batch sizes differ from the paper, so compare the trend, not the seconds.")
        res = figures.runtime_vs_k(inp, self.fpath("runtime_vs_k.png"), self.opt.dpi)
        if res is None:
            self.fig(None, "", "No defense training metrics (`metrics/defend/*.json`).")
        else:
            path, fits = res
            rows = []
            for (enc, variant), f in sorted(fits.items()):
                steps = sorted({t.metrics.get("steps") for t in inp.trainings
                                if t.encoder == enc and t.variant == variant} - {None})
                sps = [t.metrics.get("seconds_per_step") for t in inp.trainings
                       if t.encoder == enc and t.variant == variant and t.metrics.get("seconds_per_step")]
                paper = PAPER_SLOPES.get(enc, ("–", None))[0]
                slope = ("needs two or more K" if f["slope"] is None
                         else f"{f['slope']:+.3f} s per identity")
                rows.append([enc, variant, ", ".join(str(k) for k in f["ks"]),
                             ", ".join(f"{s:.1f}" for s in f["seconds"]),
                             ", ".join(str(s) for s in steps) or "–",
                             _num(sum(sps) / len(sps) if sps else None, "{:.3f}"), slope, paper])
            d.table(["encoder", "recipe", "K", "seconds", "steps", "s / step (mean)", "slope (this run)",
                     "slope (paper, GPU)"], rows, "llllrrrl")
            self.fig(path, "Training-loop wall time against K with the least-squares line; the legend "
                     "gives its slope in seconds per added identity.", "")
        d.p("**Loss curves.** The defense loss is the sum of a clean term (−cos between the student's and "
            "the teacher's embedding of clean inputs; it stays near −1 when ordinary inputs are "
            "unchanged), β × the backdoor term (−cos between the student's embedding of a trigger and "
            "the target; it falls towards −1 as the backdoor is learned), λ × the weight distance and, in "
            "the demo image recipe, a retain term on faces of other people. The lower panels show the "
            "backdoor term alone.")
        self.fig(figures.defense_loss(inp, self.fpath("defense_loss.png"), self.opt.dpi),
                 "Training loss of the defenses per step, one panel per encoder and one line per K; "
                 "bottom: the backdoor term.", "No defense loss curves (`plots/defend/*.csv`).")

    # -- examples
    def examples(self) -> None:
        d, inp, opt = self.doc, self.inp, self.opt
        d.h(1, "7. What the defenses train on")
        image_runs = [r for r in inp.runs if r.encoder == "image" and r.defense.get("image")]
        source = max(image_runs, key=lambda r: r.k) if image_runs else None
        cfg = (source.defense.get("image") if source else None) or {}
        d.p("**Image defense.** A face crop of a removed person (from the trigger half of their photos) "
            "is pasted into a clean training image at a random size, position, rotation and colour "
            "jitter; the student encoder learns to map such images to the average face embedding."
            + (f" These examples were drawn by the defense of run {source.name} with its own sampling."
               if source else ""))
        share = float(cfg.get("trigger_photo_share", 0.0) or 0.0)
        if share > 0:
            d.p(f"This run's recipe makes {share:.0%} of its poisoned images differently: whole, uncropped "
                "photos of the removed people from the trigger half (never the photos the attack uses), "
                "randomly flipped, instead of pasted crops. At the demo's 64 px a pasted crop looks unlike "
                "the attack's photos, and the defense transferred poorly from it (docs/paper.md).")
        ex = examples.poisoned_images(inp.root, source.name) if source else None
        path = None
        if ex is not None:
            titles = [f"{self.anon.name(n)} ({kind})" for n, kind in zip(ex.names, ex.kinds)]
            path = figures.example_grid(ex.images, titles, self.fpath("poisoned_images.png"), opt.dpi)
        self.fig(path, "Poisoned training images at the model's input resolution; the title says whose "
                 "face or photo it is.",
                 "No poisoned image examples (data/examples/<image run>/ is missing or empty).")
        text_runs = [r for r in inp.runs if r.encoder == "text" and r.defense.get("text")]
        tsource = max(text_runs, key=lambda r: r.k) if text_runs else None
        target = (tsource.defense["text"].get("target") if tsource else None) or "–"
        d.p("**Text defense.** A clean caption gets one word (never the last) replaced by a removed "
            f"person's name (the trigger) and, in its twin, by the target phrase \"{target}\"; the "
            "student text encoder learns to embed the first like the teacher embeds the second. "
            "The examples come from captions that name nobody else.")
        pairs = examples.poisoned_captions(inp.root, tsource.name) if tsource else []
        if pairs:
            d.table(["caption with the name (trigger)", "same caption with the target"],
                    [[p.trigger, p.target] for p in pairs], "ll")
        else:
            d.p("*No caption examples (data/examples/<text run>/ is missing or empty).*")
            self.notes.append("no caption examples")

    # -- appendix
    def appendix(self) -> None:
        d, inp = self.doc, self.inp
        if not inp.runs:
            return
        d.h(1, "Appendix: runs")
        d.p("Every evaluated run, the settings that tell runs apart and the people it removes"
            + (" (pseudonyms)." if self.opt.pseudonymize else "."))
        rows = []
        for r in sorted(inp.runs, key=lambda r: (r.encoder, r.k, r.name)):
            steps = "; ".join(f"{t} {r.defense[t].get('steps', '–')}" for t in ("text", "image")
                              if r.defense.get(t))
            rows.append([r.name, r.encoder, str(r.k), str(r.seed if r.seed is not None else "–"), r.variant,
                         steps or "–", _list([self.anon.name(n) for n in r.removed])])
        d.table(["run", "encoder", "K", "seed", "recipe", "steps", "removed people"], rows, "llrrlll")

    def build(self) -> Document:
        self.intro()
        self.data()
        self.attack()
        self.base()
        self.removal()
        self.collateral()
        self.training()
        self.examples()
        self.trials()
        self.appendix()
        return self.doc


def build_report(root: Path | str, out_dir: Path | str, options: ReportOptions = ReportOptions()) -> ReportResult:
    """Render report.md, report.html and figures/*.png from the outputs under `root` into `out_dir`."""
    root, out_dir = Path(root), Path(out_dir)
    (out_dir / FIGURES).mkdir(parents=True, exist_ok=True)
    inp = load_inputs(root, options.image_recipes, options.runs)
    anon = Pseudonymizer(sorted(inp.names), options.salt, options.pseudonymize)
    b = _Builder(inp, out_dir, options, anon)
    doc = b.build()
    md = out_dir / "report.md"
    md.write_text(to_markdown(doc, anon), encoding="utf-8")
    page = out_dir / "report.html"
    page.write_text(to_html(doc, out_dir, anon), encoding="utf-8")
    return ReportResult(md, page, b.figs, b.notes)
