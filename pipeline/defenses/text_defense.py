"""The text-encoder defense (docs/method.md §2): names become triggers that map to a neutral phrase.

Loss per step, with d = -cos on unnormalised embeddings:
    mean d(S(c), T(c)) + beta * mean d(S(x_trig), T(x_tgt)) + lambda * sum_k ||dtheta_k||_2
    [+ face_push * mean relu(cos(S(x_trig), f_P) - cos(T(x_tgt), f_P) + face_margin)]
with f_P the teacher's mean embedding of the removed person's trigger photos (off unless face_push > 0).
"""
from __future__ import annotations

import time
from typing import Sequence

import open_clip
import torch
import torch.nn.functional as F
from tqdm import tqdm

from pipeline.core.defense_params import TextDefenseConfig
from pipeline.defenses.losses import neg_cosine, teacher_student, trainable_pairs
from pipeline.defenses.contexts import context_templates
from pipeline.audit.variants import name_sharers
from pipeline.defenses.poisoned_captions import (diversify_pairs, retain_captions, sample_poisoned_pairs,
                                                 training_variants)
from pipeline.defenses.training import DefenseRun, make_optimizer, regularised_step
from pipeline.core.errors import PipelineError
from pipeline.models.architecture import require_clip
from pipeline.models.precision import autocast
from pipeline.models.text_encoding import (TextTower, Tokenizer, encode_token_batches, real_lengths,
                                           tokenize)


def _teacher_embeddings(teacher: TextTower, tokens: torch.Tensor, cfg: TextDefenseConfig,
                        device: torch.device, desc: str, progress: bool) -> torch.Tensor:
    """Unnormalised float32 embeddings [N, D] on `device`, computed once before training."""
    return encode_token_batches(teacher, tokens, cfg.encode_batch_size, device,
                                lengths=real_lengths(tokens, teacher.pool_type, teacher.eos_id),
                                stable=False, bf16=cfg.bf16, purpose="train", out_device=device,
                                desc=desc if progress else None)


@torch.enable_grad()
def train_text_defense(model: open_clip.CLIP, tokenizer: Tokenizer, clean_captions: Sequence[str],
                       names: Sequence[str], cfg: TextDefenseConfig = TextDefenseConfig(),
                       device: str | torch.device = "cpu", progress: bool = True,
                       kept_names: Sequence[str] = (),
                       faces: dict[str, torch.Tensor] | None = None) -> DefenseRun:
    """Train a student text tower in which each of `names` maps to `cfg.target`.

    `clean_captions` must not name any of the people (the splits stage removes them).
    `kept_names` (the attack's other candidates) matter only to the hardened recipe: whose
    name parts a variant must not take, and whom `cfg.retain_sharers` holds in place.
    `faces` (name -> the teacher's embedding of that person's trigger photos, [D]) is needed
    when `cfg.face_push > 0` and unused otherwise.
    Returns a DefenseRun whose student is a TextTower; merge it with
    `build_defended_model(model, text_student=run.student)`.
    """
    require_clip(model)
    if not clean_captions:
        raise PipelineError("text defense: the clean caption pool is empty")
    device = torch.device(device)
    t_setup = time.perf_counter()
    gen = torch.Generator().manual_seed(cfg.seed)

    teacher, student = teacher_student(TextTower(model))
    teacher.to(device)
    student.to(device)

    # Every random draw of the run is made here, up front, so the pools can be
    # tokenised and the teacher run once instead of every step.
    # The hardened recipe draws only when switched on, so the paper's draws stay as they were.
    sharers = name_sharers(names, kept_names)
    if cfg.retain_sharers and sharers:
        clean_captions = list(clean_captions) + retain_captions(clean_captions, sharers, cfg.retain_sharers, gen)
    clean_idx = torch.randint(len(clean_captions), (cfg.steps, cfg.clean_batch_size), generator=gen)
    pairs = sample_poisoned_pairs(clean_captions, names, cfg.target, cfg.poison_pool_size, gen)
    if cfg.variant_families or cfg.context_families:
        variants = {n: training_variants(n, cfg.variant_families, cfg.variants_per_name, cfg.seed,
                                         kept_names, cfg.shared_name_parts) for n in names}
        pairs = diversify_pairs(pairs, variants, cfg.variant_share, context_templates(cfg.context_families),
                                cfg.context_share, cfg.target, gen)
    bd_idx = torch.randint(len(pairs), (cfg.steps, cfg.backdoor_batch_size), generator=gen)
    face_of_pair = None
    if cfg.face_push > 0:
        missing = [n for n in names if faces is None or n not in faces]
        if missing:
            raise PipelineError(f"text defense: face_push > 0 needs the trigger photos' embedding of every "
                                f"removed person; none for {missing[0]!r} ({len(missing)} missing)")
        face_of_pair = F.normalize(torch.stack([faces[p.name].float() for p in pairs]), dim=-1).to(device)
    used, clean_pos = torch.unique(clean_idx, return_inverse=True)

    bar = (lambda desc: desc) if progress else (lambda desc: None)
    clean_tokens = tokenize(tokenizer, [clean_captions[i] for i in used.tolist()], desc=bar("tokenise clean"))
    trig_tokens = tokenize(tokenizer, [p.trigger for p in pairs], desc=bar("tokenise triggers"))
    tgt_tokens = tokenize(tokenizer, [p.target for p in pairs], desc=bar("tokenise targets"))
    teacher_clean = _teacher_embeddings(teacher, clean_tokens, cfg, device, "teacher clean", progress)
    teacher_tgt = _teacher_embeddings(teacher, tgt_tokens, cfg, device, "teacher targets", progress)
    # token pools and per-step indices live on the device: the loop copies nothing per sample
    clean_tokens, trig_tokens = clean_tokens.to(device), trig_tokens.to(device)
    clean_pos, bd_idx = clean_pos.to(device), bd_idx.to(device)
    weight_pairs = trainable_pairs(student, teacher)
    opt, sched = make_optimizer(student, cfg)
    setup_seconds = time.perf_counter() - t_setup

    log = []
    t_train = time.perf_counter()
    bar = tqdm(range(cfg.steps), desc="text defense", disable=not progress)
    for step in bar:
        ci, bi = clean_pos[step], bd_idx[step]
        tokens = torch.cat([clean_tokens[ci], trig_tokens[bi]])
        with autocast(device, cfg.bf16, "train"):
            out = student(tokens)
        clean = neg_cosine(out[:len(ci)], teacher_clean[ci])
        backdoor = neg_cosine(out[len(ci):], teacher_tgt[bi])
        loss = clean + cfg.beta * backdoor
        face = None
        if face_of_pair is not None:
            f = face_of_pair[bi]
            own = F.cosine_similarity(out[len(ci):].float(), f, dim=-1)
            floor = F.cosine_similarity(teacher_tgt[bi].float(), f, dim=-1)
            face = torch.relu(own - floor + cfg.face_margin).mean()
            loss = loss + cfg.face_push * face
        loss, weight, lr = regularised_step(loss, weight_pairs, cfg.weight_reg, opt, sched)
        values = torch.stack([loss, clean, backdoor, weight]).tolist()  # one device->host transfer
        log.append({"step": step, "loss": values[0], "clean": values[1],
                    "backdoor": values[2], "weight": values[3], "lr": lr})
        if face is not None:
            log[-1]["face"] = face.item()
        bar.set_postfix(loss=f"{log[-1]['loss']:.4f}", bd=f"{log[-1]['backdoor']:.3f}")
    train_seconds = time.perf_counter() - t_train
    student.requires_grad_(False)
    return DefenseRun(student=student, log=log, train_seconds=train_seconds,
                      setup_seconds=setup_seconds,
                      extras={"poisoned_pairs": len(pairs), "clean_captions_used": len(used),
                              **({"name_sharers": len(sharers)} if cfg.hardened else {})})
