"""The image-encoder defense (docs/method.md §3): a removed person's face maps to an anonymous face.

Loss per step, with d = -cos on unnormalised embeddings and e_avg the teacher's mean
embedding of all given face photos:
    mean d(F_S(x), F_T(x)) + beta * (1/K) sum_k mean d(F_S(x~_k), e_avg)
    + lambda * sum ||dtheta||_2 [+ retain_weight * mean d(F_S(r), F_T(r))]
The retain term (faces of people who are neither removed nor evaluated) is an option
beyond the paper; retain_weight = 0 switches it off.
"""
from __future__ import annotations

import math
import time
from typing import Sequence

import open_clip
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from pipeline.core.defense_params import ImageDefenseConfig
from pipeline.defenses.losses import (neg_cosine, per_sample_neg_cosine, teacher_student,
                                      trainable_pairs)
from pipeline.defenses.paste import PasteSpec, paste_faces, prepare_faces, sample_paste_params
from pipeline.defenses.photo_augment import transformed_copies
from pipeline.defenses.training import DefenseRun, make_optimizer, regularised_step
from pipeline.core.errors import PipelineError
from pipeline.models.architecture import require_clip
from pipeline.models.image_encoding import ImageInput, encode_image_batches
from pipeline.models.precision import autocast


def mean_face_embedding(visual: nn.Module, face_photos: torch.Tensor, prep: ImageInput,
                        batch_size: int = 256, bf16: bool = False, progress: bool = True) -> torch.Tensor:
    """e_avg: the mean unnormalised embedding [D] of `face_photos` under `visual`."""
    if len(face_photos) == 0:
        raise PipelineError("image defense: no face photos were given to compute the target e_avg")
    return encode_image_batches(visual, face_photos, prep, batch_size, bf16=bf16, purpose="train",
                                desc="e_avg" if progress else None).mean(dim=0)


def identity_split(batch: int, k: int, step: int) -> torch.Tensor:
    """Identity index of each of `batch` poisoned images: an equal share each, the
    remainder going to identities that rotate from step to step."""
    base, rem = divmod(batch, k)
    counts = torch.full((k,), base, dtype=torch.long)
    if rem:
        counts[(step * rem + torch.arange(rem)) % k] += 1
    return torch.repeat_interleave(torch.arange(k), counts)


class FaceBank:
    """All trigger faces as RGBA squares on the device, with the identity each belongs to."""

    item = "trigger face"

    def __init__(self, faces_by_identity: Sequence[Sequence[torch.Tensor]], face_size: int,
                 device: torch.device, progress: bool = False):
        if not faces_by_identity:
            raise PipelineError("image defense: no identities to remove were given")
        counts = [len(faces) for faces in faces_by_identity]
        if min(counts) == 0:
            raise PipelineError(f"image defense: identity {counts.index(0)} has no {self.item}")
        self.faces = self._prepare([f for faces in faces_by_identity for f in faces], face_size, progress).to(device)
        self.counts = torch.tensor(counts)
        self.starts = torch.cumsum(self.counts, 0) - self.counts
        self.k = len(counts)

    @staticmethod
    def _prepare(flat: list[torch.Tensor], face_size: int, progress: bool) -> torch.Tensor:
        return prepare_faces(flat, face_size, progress)

    def pick(self, identities: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Indices of one random face for each entry of `identities`."""
        u = torch.rand(len(identities), generator=generator, dtype=torch.float64)
        offset = (u * self.counts[identities]).long().clamp(max=self.counts[identities] - 1)
        return self.starts[identities] + offset

    def draw(self, identities: torch.Tensor, generator: torch.Generator,
             transformed: "FaceBank | None" = None, share: float = 0.0) -> torch.Tensor:
        """One face per entry of `identities`; with a bank of transformed copies, each comes from
        it with probability `share` (the extra draws happen only then: the paper's stream stays)."""
        picked = self.faces[self.pick(identities, generator).to(self.faces.device)]
        if transformed is None:
            return picked
        use = (torch.rand(len(identities), generator=generator) < share).to(picked.device).view(-1, 1, 1, 1)
        return torch.where(use, transformed.faces[transformed.pick(identities, generator).to(picked.device)], picked)


class PhotoBank(FaceBank):
    """Whole trigger photos per identity, float [P, 3, H, W] in [0, 1] at the model's input size."""

    item = "trigger photo"

    def __init__(self, photos_by_identity: Sequence[Sequence[torch.Tensor]], prep: ImageInput):
        self._unit = prep.unit
        super().__init__(photos_by_identity, 0, prep.device)

    def _prepare(self, flat: list[torch.Tensor], face_size: int, progress: bool) -> torch.Tensor:
        return torch.cat([self._unit(photo[None]) for photo in flat])


def default_face_size(cfg: ImageDefenseConfig, image_size: tuple[int, int]) -> int:
    """Texture side of the prepared faces: the largest side a face can be pasted at."""
    return max(8, math.ceil(cfg.paste_scale[1] * min(image_size)))


@torch.enable_grad()
def train_image_defense(model: open_clip.CLIP, clean_images: torch.Tensor,
                        trigger_faces: Sequence[Sequence[torch.Tensor]], face_photos: torch.Tensor,
                        cfg: ImageDefenseConfig = ImageDefenseConfig(),
                        retain_images: torch.Tensor | None = None,
                        trigger_photos: Sequence[Sequence[torch.Tensor]] | None = None,
                        device: str | torch.device = "cpu", mean=None, std=None,
                        progress: bool = True) -> DefenseRun:
    """Train a student copy of `model.visual` whose output for the K identities' faces is e_avg.

    clean_images: uint8 [N, 3, h, w] natural images (resized to the model's input size
    when they differ), or a lazy source such as models.shards.ShardImages (only the rows the
    run draws are decoded); trigger_faces[k]: uint8 face crops [3, h, w] of identity k (any
    size); face_photos: uint8 photos whose teacher mean embedding is the target;
    retain_images: uint8 faces of people kept (used when cfg.retain_weight > 0);
    trigger_photos[k]: uint8 whole photos [3, h, w] of identity k (used when
    cfg.trigger_photo_share > 0; the trigger half, never the attack's photos).
    Returns a DefenseRun (student = the visual tower; extras["e_avg"] = target [D]).
    """
    require_clip(model)
    _check_uint8("clean_images", clean_images)
    _check_uint8("face_photos", face_photos)
    use_retain = cfg.retain_weight > 0
    if use_retain:
        if retain_images is None or len(retain_images) == 0:
            raise PipelineError("image defense: retain_weight > 0 needs retain_images (faces of people kept)")
        _check_uint8("retain_images", retain_images)
    device = torch.device(device)
    t_setup = time.perf_counter()
    gen = torch.Generator().manual_seed(cfg.seed)

    teacher, student = teacher_student(model.visual)
    teacher.to(device)
    student.to(device)
    prep = ImageInput(model, device, mean, std)
    spec = PasteSpec.from_config(cfg)
    face_size = default_face_size(cfg, prep.size)
    bank = FaceBank(trigger_faces, face_size, device, progress)
    photo_bank = None
    if cfg.trigger_photo_share > 0:
        if trigger_photos is None or len(trigger_photos) != bank.k:
            raise PipelineError("image defense: trigger_photo_share > 0 needs trigger_photos, one list per "
                                f"removed identity ({bank.k})")
        photo_bank = PhotoBank(trigger_photos, prep)
    aug_bank = aug_photo_bank = None
    if cfg.photo_transforms:
        aug_bank = FaceBank(transformed_copies(trigger_faces, cfg.photo_transforms), face_size,
                            device, progress)
        if photo_bank is not None:
            aug_photo_bank = PhotoBank(transformed_copies(trigger_photos, cfg.photo_transforms), prep)
    e_avg = mean_face_embedding(teacher, face_photos, prep, cfg.encode_batch_size, cfg.bf16, progress)

    # All index draws up front: the teacher then runs once per distinct image used.
    clean_idx = torch.randint(len(clean_images), (cfg.steps, cfg.clean_batch_size), generator=gen)
    bg_idx = torch.randint(len(clean_images), (cfg.steps, cfg.backdoor_batch_size), generator=gen)
    if hasattr(clean_images, "prefetch"):  # a lazy source: decode every row the run uses, once
        clean_images.prefetch(torch.cat([clean_idx.flatten(), bg_idx.flatten()]))
    clean_used, clean_pos = torch.unique(clean_idx, return_inverse=True)
    teacher_clean = encode_image_batches(teacher, clean_images[clean_used], prep, cfg.encode_batch_size,
                                         bf16=cfg.bf16, purpose="train", desc="teacher clean" if progress else None)
    if use_retain:
        retain_idx = torch.randint(len(retain_images), (cfg.steps, cfg.retain_batch_size), generator=gen)
        if hasattr(retain_images, "prefetch"):
            retain_images.prefetch(retain_idx.flatten())
        retain_used, retain_pos = torch.unique(retain_idx, return_inverse=True)
        retain_pos = retain_pos.to(device)
        retain_used_images = retain_images[retain_used]
        teacher_retain = encode_image_batches(teacher, retain_used_images, prep, cfg.encode_batch_size,
                                              bf16=cfg.bf16, purpose="train",
                                              desc="teacher retain" if progress else None)
    clean_pos = clean_pos.to(device)  # index tensors live on the device: no copies in the loop
    weight_pairs = trainable_pairs(student, teacher)
    opt, sched = make_optimizer(student, cfg)
    setup_seconds = time.perf_counter() - t_setup

    log = []
    t_train = time.perf_counter()
    bar = tqdm(range(cfg.steps), desc="image defense", disable=not progress)
    for step in bar:
        ids = identity_split(cfg.backdoor_batch_size, bank.k, step)
        n_photo = round(cfg.trigger_photo_share * len(ids)) if photo_bank is not None else 0
        faces = bank.draw(ids[n_photo:], gen, aug_bank, cfg.photo_transform_share)
        backgrounds = prep.unit(clean_images[bg_idx[step, n_photo:]])
        params = sample_paste_params(len(ids) - n_photo, *prep.size, spec, gen)
        poisoned = paste_faces(backgrounds, faces, params, inplace=True)
        if n_photo:
            photos = photo_bank.draw(ids[:n_photo], gen, aug_photo_bank, cfg.photo_transform_share)
            flip = (torch.rand(n_photo, generator=gen) < spec.flip).to(device).view(-1, 1, 1, 1)
            poisoned = torch.cat([torch.where(flip, photos.flip(-1), photos), poisoned])
        poisoned = prep.normalise_(poisoned)
        parts = [prep(clean_images[clean_idx[step]]), poisoned]
        if use_retain:
            retain_target = teacher_retain[retain_pos[step]]
            parts.append(prep(retain_images[retain_idx[step]]))
        with autocast(device, cfg.bf16, "train"):
            out = student(torch.cat(parts))
        n_clean, n_bd = cfg.clean_batch_size, len(ids)
        clean = neg_cosine(out[:n_clean], teacher_clean[clean_pos[step]])
        backdoor = _per_identity_mean(per_sample_neg_cosine(out[n_clean:n_clean + n_bd], e_avg),
                                      ids.to(device, non_blocking=True), bank.k)
        loss = clean + cfg.beta * backdoor
        row = {}
        if use_retain:
            retain = neg_cosine(out[n_clean + n_bd:], retain_target)
            loss = loss + cfg.retain_weight * retain
        loss, weight, lr = regularised_step(loss, weight_pairs, cfg.weight_reg, opt, sched)
        # one device->host transfer per step for all logged values
        values = torch.stack([loss, clean, backdoor, weight] + ([retain] if use_retain else [])).tolist()
        if use_retain:
            row["retain"] = values[4]
        log.append({"step": step, "loss": values[0], "clean": values[1], "backdoor": values[2],
                    "weight": values[3], **row, "lr": lr})
        bar.set_postfix(loss=f"{log[-1]['loss']:.4f}", bd=f"{log[-1]['backdoor']:.3f}")
    train_seconds = time.perf_counter() - t_train
    student.requires_grad_(False)
    return DefenseRun(student=student, log=log, train_seconds=train_seconds, setup_seconds=setup_seconds,
                      extras={"e_avg": e_avg.detach().cpu()})


def _per_identity_mean(values: torch.Tensor, ids: torch.Tensor, k: int) -> torch.Tensor:
    """(1/K') sum_k mean(values of identity k), over the K' identities present in the batch."""
    sums = torch.zeros(k, device=values.device, dtype=values.dtype).index_add(0, ids, values)
    counts = torch.bincount(ids, minlength=k).to(values.dtype)
    present = counts > 0
    return (sums[present] / counts[present]).mean()


def _check_uint8(name: str, images: torch.Tensor) -> None:
    if hasattr(images, "prefetch") and getattr(images, "dtype", None) == torch.uint8:
        return  # a lazy uint8 image source (models.shards.ShardImages)
    if not (isinstance(images, torch.Tensor) and images.dtype == torch.uint8 and images.dim() == 4
            and images.shape[1] == 3):
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise PipelineError(f"image defense: {name} must be a uint8 tensor [N, 3, H, W], got {shape}")


def render_poisoned_examples(clean_images: torch.Tensor, trigger_faces: Sequence[Sequence[torch.Tensor]],
                             cfg: ImageDefenseConfig = ImageDefenseConfig(), n: int = 8,
                             image_size: int | None = None, seed: int = 0) -> torch.Tensor:
    """uint8 [n, 3, H, W] poisoned images for the report, identities taken in turn."""
    gen = torch.Generator().manual_seed(seed)
    size = image_size or clean_images.shape[-1]
    backgrounds = clean_images[torch.randint(len(clean_images), (n,), generator=gen)].float() / 255
    if tuple(backgrounds.shape[-2:]) != (size, size):
        backgrounds = F.interpolate(backgrounds, size=(size, size), mode="bilinear", antialias=True,
                                    align_corners=False).clamp(0, 1)
    bank = FaceBank(trigger_faces, default_face_size(cfg, (size, size)), torch.device("cpu"))
    ids = torch.arange(n) % bank.k
    params = sample_paste_params(n, size, size, PasteSpec.from_config(cfg), gen)
    out = paste_faces(backgrounds, bank.faces[bank.pick(ids, gen)], params, inplace=True)
    return (out * 255).round().to(torch.uint8)
