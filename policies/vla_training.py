"""Build a tiny VLA and fine-tune a VLA on a LeRobotDataset v3 (PyTorch + transformers, no ROS).

``build_tiny_vla`` writes a randomly initialised PaliGemma (SigLIP vision
tower + Gemma decoder; the architecture of pi0's backbone) shrunk to ~185 k
parameters, a word-level tokenizer whose vocabulary ends with the 256-token
action block, and ``armpilot_vla.json`` (see ``vla``). Nothing is downloaded.

``finetune_vla``: next-token cross-entropy on the action tokens only (prompt
and image are context). A VLA built here tokenises actions relative to the
current joint state (``relative_actions``; the range from the dataset's
offsets at each step of the horizon): with absolute bins a tiny model must
learn a separate token for every position it may start from, and did not. Runs under ``torchrun`` with PyTorch's
DistributedDataParallel (gloo on CPU, nccl on GPUs): each rank draws its own
batches, gradients are averaged by DDP, rank 0 saves.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from armpilot.dataset.loader import LeRobotV3Dataset
from armpilot.perception.config import REFERENCE_BOX
from armpilot.policies.action_tokenizers import BinningTokenizer, DCTTokenizer
from armpilot.policies.vla import VLA_META, action_token_ids, image_tensor, load_vla, prompt_ids
from armpilot.sim.scenes import COLOUR_NAMES

SPECIALS = ["<pad>", "<unk>", "<bos>", "<eos>"]
WORDS = tuple(dict.fromkeys(
    ("reach the ball push box to goal pick up cube lift move arm gripper open close left right touch put set "
     "down onto pad a an and on of in").split() + sorted(COLOUR_NAMES.values())))
#: Range of the perceived object's position given to the model, m (the perception crop box of armpilot's arm).
OBJECT_LOW, OBJECT_HIGH = REFERENCE_BOX
#: Instruction used for a dataset's task name when the dataset has no instruction of its own.
#: The tiny decoder: width, layers, heads and the spread of its initial weights. With width 32 and the usual
#: 0.02 the attention stayed uniform for hundreds of steps and the instruction's one word never won (a toy set where
#: only "left"/"right" decides: loss stuck at the unconditional 0.23 for 200 steps; 0.1: learnt in 50).
TINY_WIDTH, TINY_LAYERS, TINY_HEADS, TINY_INIT = 64, 4, 4, 0.1
#: Action-token kinds: RT-2/OpenVLA bins, or FAST-like DCT coefficients (Pertsch et al. 2025) with an end token.
ACTION_TOKENS = ("binning", "dct")
#: Tokens in the action block (also the state and object bins): 256 bins, or 255 DCT integers and the end token.
ACTION_BLOCK = 256
#: DCT coefficients of the [-1, 1]-scaled offsets are multiplied by this before rounding (FAST uses 10).
DCT_SCALE = 20.0
TASK_INSTRUCTIONS = {"reach": "reach the ball", "push": "push the box to the goal", "pick": "pick up the box",
                     "place": "put the box on the green pad"}


def _word_tokenizer(words: list[str], action_bins: int):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate([*SPECIALS, *dict.fromkeys(words)])}
    offset = len(vocab)
    vocab.update({f"<act_{k:03d}>": offset + k for k in range(action_bins)})
    vocab["<image>"] = len(vocab)
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", unk_token="<unk>",
                                        bos_token="<bos>", eos_token="<eos>")
    return tokenizer, offset, vocab["<image>"]


def ordinal_embeddings(bins: int, width: int, spread: float) -> torch.Tensor:
    """(bins, width) embeddings of ordered bins: sines and cosines of the bin's place in the range at width / 2
    frequencies from 1/2 to bins/8 cycles, RMS ``spread``: a bin is near its neighbours and far from distant ones,
    so what is learnt for one position carries to the next (with random rows every bin is learnt alone)."""
    place = (torch.arange(bins, dtype=torch.float64) + 0.5) / bins
    cycles = torch.logspace(np.log10(0.5), np.log10(bins / 8), width // 2, dtype=torch.float64)
    phase = 2 * np.pi * place[:, None] * cycles[None]
    return (torch.cat([phase.sin(), phase.cos()], dim=1) * spread * np.sqrt(2)).float()


def build_tiny_vla(folder: Path, joint_names: tuple[str, ...], action_low: np.ndarray, action_high: np.ndarray,
                   action_horizon: int = 5, action_dt: float = 0.2, image_size: int = 32, seed: int = 0,
                   default_instruction: str = "",
                   relative_range: tuple[np.ndarray, np.ndarray] | None = None, action_tokens: str = "binning") -> Path:
    """Writes a tiny random PaliGemma VLA (model, tokenizer, armpilot_vla.json) into ``folder``.

    ``action_low``/``action_high``: (J,) joint range (the state bins); ``relative_range``: (J,) low and high
    of the action offsets from the state (actions are then tokenised relative to it), None: absolute.
    ``action_tokens``: ``binning`` (H x J tokens) or ``dct`` (FAST-like, up to H x J tokens and an end token)."""
    if action_tokens not in ACTION_TOKENS:
        raise ValueError(f"action_tokens is '{action_tokens}'; use one of {ACTION_TOKENS}")
    from transformers import GemmaConfig, PaliGemmaConfig, PaliGemmaForConditionalGeneration, SiglipVisionConfig

    tokenizer, offset, image_id = _word_tokenizer(list(WORDS), ACTION_BLOCK)
    vision = SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                                image_size=image_size, patch_size=8, projection_dim=TINY_WIDTH)
    text = GemmaConfig(vocab_size=len(tokenizer), hidden_size=TINY_WIDTH, intermediate_size=2 * TINY_WIDTH,
                       num_hidden_layers=TINY_LAYERS, num_attention_heads=TINY_HEADS, num_key_value_heads=1,
                       head_dim=TINY_WIDTH // TINY_HEADS, initializer_range=TINY_INIT,
                       pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                       eos_token_id=tokenizer.eos_token_id)
    config = PaliGemmaConfig(vision_config=vision.to_dict(), text_config=text.to_dict(), image_token_index=image_id,
                             projection_dim=TINY_WIDTH)
    torch.manual_seed(seed)
    model = PaliGemmaForConditionalGeneration(config)
    with torch.no_grad():  # the bins are ordered: neighbours start near each other (input and tied output)
        model.get_input_embeddings().weight[offset:offset + ACTION_BLOCK] = ordinal_embeddings(ACTION_BLOCK, TINY_WIDTH,
                                                                                               TINY_INIT)
    folder = Path(folder)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    low, high = tuple(float(v) for v in action_low), tuple(float(v) for v in action_high)
    action_range = (low, high) if relative_range is None else tuple(tuple(float(v) for v in r) for r in relative_range)
    actions = (BinningTokenizer(*action_range, bins=ACTION_BLOCK) if action_tokens == "binning" else
               DCTTokenizer(*action_range, scale=DCT_SCALE, max_abs=(ACTION_BLOCK - 2) // 2))
    meta = {"joint_names": list(joint_names), "action_token_offset": offset,
            "action_tokenizer": json.loads(actions.to_json()),
            **({"action_end_token": actions.vocab_size} if action_tokens == "dct" else {}),
            "relative_actions": relative_range is not None,
            "state_tokenizer": json.loads(BinningTokenizer(low, high).to_json()),
            "object_tokenizer": json.loads(BinningTokenizer(OBJECT_LOW, OBJECT_HIGH).to_json()),
            "action_horizon": action_horizon, "action_dt": action_dt, "image_size": image_size,
            "prompt_template": "{instruction}", "default_instruction": default_instruction}
    (folder / VLA_META).write_text(json.dumps(meta, indent=2))
    return folder


def relative_action_range(dataset: LeRobotV3Dataset, stride: int, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """(J,) low and high of (action ``k * stride`` frames ahead - state now) over every frame and k in
    1..``horizon`` (held at the episode's last frame, as the loader pads)."""
    states, actions = dataset.column("observation.state"), dataset.column("action")
    ahead = np.arange(len(states))[:, None] + stride * np.arange(1, horizon + 1)[None] - 1
    offsets = actions[np.minimum(ahead, dataset.episode_bounds[:, 1:] - 1)] - states[:, None]
    return offsets.min(axis=(0, 1)), offsets.max(axis=(0, 1))


def _instruction(task: str) -> str:
    """The instruction of a dataset task: the task's own words, or a sentence for a bare task name."""
    return TASK_INSTRUCTIONS.get(task, task)


def _only_instruction(dataset: LeRobotV3Dataset) -> str:
    """The instruction every episode shares ("" when they differ: the user must give one)."""
    instructions = {_instruction((ep.get("tasks") or ["reach"])[0]) for ep in dataset.episodes}
    return instructions.pop() if len(instructions) == 1 else ""


def dataset_examples(dataset: LeRobotV3Dataset, model: Any, tokenizer: Any, meta: dict[str, Any],
                     stride: int) -> dict[str, torch.Tensor]:
    """Every frame as (input_ids (N, L), action mask (N, L), pixel_values (N, 3, S, S))."""
    config = model.config
    vision = config.vision_config
    image_tokens = (vision.image_size // vision.patch_size) ** 2
    image_id = config.image_token_id if hasattr(config, "image_token_id") else config.image_token_index
    horizon = meta["action_horizon"]
    tasks = {ep["episode_index"]: (ep.get("tasks") or ["reach"])[0] for ep in dataset.episodes}
    episode_of = {i: ep["episode_index"] for ep in dataset.episodes
                  for i in range(ep["dataset_from_index"], ep["dataset_to_index"])}
    ids, masks, images = [], [], []
    for i in range(len(dataset)):
        item = dataset[i]
        instruction = _instruction(tasks[episode_of[i]])
        prefix = prompt_ids(tokenizer, meta, instruction, item["observation.state"][-1].numpy(), image_tokens,
                            image_id, item["observation.object"][-1, :3].numpy())
        actions = item["action"][stride - 1::stride][:horizon].numpy()  # frames stride, 2 stride, ... ahead
        if meta.get("relative_actions"):
            actions = actions - item["observation.state"][-1].numpy()
        action_ids = action_token_ids(meta, actions)
        ids.append(prefix + action_ids)
        masks.append([False] * len(prefix) + [True] * len(action_ids))
        color = (item["observation.images.color"][-1].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        images.append(image_tensor(color, meta["image_size"]))
    length = max(len(x) for x in ids)
    pad = tokenizer.pad_token_id
    return {"input_ids": torch.tensor([x + [pad] * (length - len(x)) for x in ids]),
            "action_mask": torch.tensor([m + [False] * (length - len(m)) for m in masks]),
            "pixel_values": torch.stack(images)}


@dataclass(frozen=True)
class VLATrainOptions:
    """``armpilot train-vla``: dataset, output folder, base model (None = build a tiny random one)."""

    dataset: Path
    output: Path
    base: Path | None = None
    steps: int = 300
    batch_size: int = 32
    learning_rate: float = 2e-3
    seed: int = 0
    action_tokens: str = "binning"


def finetune_vla(options: VLATrainOptions, on_step: Callable[[int, float], None] | None = None) -> dict[str, Any]:
    """Fine-tunes (DDP under torchrun) and saves into ``options.output``; returns a report."""
    started = time.monotonic()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world > 1:
        torch.distributed.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    action_horizon, action_dt = 5, 0.2
    dataset = LeRobotV3Dataset(options.dataset, n_obs_steps=1, horizon=16, decode_video=True)
    stride = max(1, round(action_dt * dataset.info["fps"]))
    base = options.base
    if base is None:
        stats = dataset.stats["action"]
        base = Path(options.output)
        if rank == 0:
            build_tiny_vla(base, tuple(dataset.info["features"]["observation.state"]["names"]),
                           stats["min"].numpy(), stats["max"].numpy(), action_horizon, action_dt,
                           seed=options.seed, default_instruction=_only_instruction(dataset),
                           relative_range=relative_action_range(dataset, stride, action_horizon),
                           action_tokens=options.action_tokens)
        if world > 1:
            torch.distributed.barrier()
    model, tokenizer, meta = load_vla(base)
    examples = dataset_examples(dataset, model, tokenizer, meta, stride)
    model.train()
    # the vision tower has parameters PaliGemma never uses (its pooling head): let DDP skip them
    trained = torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=True) if world > 1 else model
    optimizer = torch.optim.AdamW(model.parameters(), lr=options.learning_rate)
    # cosine decay after a short warm-up: the last steps refine the bins instead of hopping between them
    warmup = max(1, min(100, options.steps // 10))
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warmup) * 0.5 * (
        1.0 + np.cos(np.pi * min(step, options.steps) / options.steps)))
    generator = torch.Generator().manual_seed(options.seed + rank)
    losses = []
    for step in range(options.steps):
        index = torch.randint(len(examples["input_ids"]), (options.batch_size,), generator=generator)
        ids, mask = examples["input_ids"][index], examples["action_mask"][index]
        # prefix-LM as PaliGemma: the prompt attends both ways, the action tokens causally (token type 1);
        # without the types every action token could see the ones after it and the loss would be a lie
        logits = trained(input_ids=ids, pixel_values=examples["pixel_values"][index],
                         attention_mask=(ids != tokenizer.pad_token_id).long(), token_type_ids=mask.long()).logits
        target_mask = mask[:, 1:]
        loss = F.cross_entropy(logits[:, :-1][target_mask], ids[:, 1:][target_mask])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
        if on_step is not None and rank == 0:
            on_step(step, losses[-1])
    if rank == 0:
        model.eval().save_pretrained(options.output)
        tokenizer.save_pretrained(options.output)
        serialisable = {k: json.loads(v.to_json()) if hasattr(v, "to_json") else v for k, v in meta.items()}
        (Path(options.output) / VLA_META).write_text(json.dumps(serialisable, indent=2))
    if world > 1:
        torch.distributed.barrier()  # leave together: tearing down while rank 0 still saves hung 1 run in 4
        torch.distributed.destroy_process_group()
    return {"output": str(options.output), "frames": len(dataset), "steps": options.steps, "world_size": world,
            "first_loss": losses[0], "final_loss": float(np.mean(losses[-20:])),
            "seconds": round(time.monotonic() - started, 1), "losses": losses}
