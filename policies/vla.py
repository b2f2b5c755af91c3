"""``vla`` backend: a Hugging Face vision-language model that speaks action tokens (RT-2 / OpenVLA style).

A model folder (never fetched at run time: ``local_files_only``) holds the
transformers model (``config.json`` + safetensors), its tokenizer, and
``armpilot_vla.json``::

    {"joint_names": [...], "action_token_offset": int, "action_tokenizer": <BinningTokenizer or DCTTokenizer JSON>,
     "action_end_token": int (DCT only: the block index that ends a chunk),
     "state_tokenizer": <BinningTokenizer JSON>, "object_tokenizer": <BinningTokenizer JSON> (optional),
     "action_horizon": 5, "action_dt": 0.2, "image_size": 32, "prompt_template": "{instruction}",
     "relative_actions": true (optional)}

Prompt: the camera image (resized, SigLIP normalisation), then the tokenised
instruction, then the proprioception as bins mapped onto the action-token
block: the joint state (``state_tokenizer``) and, when the model was trained
with it, the perceived object position (``object_tokenizer``); the model
continues with ``action_horizon x J`` action tokens (binning), or with up to
that many DCT coefficients and the end token (FAST-like: a smooth chunk takes
fewer), decoded with a KV cache and constrained to the tokenizer's tokens,
which it turns back into joint positions (with ``relative_actions``, into offsets from the
current joint state, as openpi does for joints: the same token then means
the same motion anywhere in the range). N candidates = N sampled sequences in one batch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from armpilot.policies.action_tokenizers import BinningTokenizer, DCTTokenizer, tokenizer_from_json
from armpilot.features import COLOR, OBJECT, STATE, TASK
from armpilot.policies.base import Capabilities, Observation, Policy
from armpilot.policies.realtime import CommittedPrefix
from armpilot.policies.chunking import resample_in_time
from armpilot.policies.diffusion_checkpoint import CheckpointError

VLA_META = "armpilot_vla.json"


def load_vla(folder: Path) -> tuple[Any, Any, dict[str, Any]]:
    """(model in eval mode, tokenizer, armpilot metadata). Raises CheckpointError naming what is wrong."""
    from transformers import AutoConfig, AutoModelForImageTextToText, PreTrainedTokenizerFast

    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"no VLA model folder at '{folder}' (weights are never downloaded at run time; "
                              "save the model there with save_pretrained, or build one with armpilot train-vla)")
    if not (folder / VLA_META).is_file():
        raise CheckpointError(f"'{folder}' has no {VLA_META} (joint names, action tokenizer, prompt layout)")
    try:
        config = AutoConfig.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError) as error:
        raise CheckpointError(f"'{folder}': no readable transformers config.json: {error}") from error
    try:
        model = AutoModelForImageTextToText.from_pretrained(folder, local_files_only=True)
    except ValueError as error:
        raise CheckpointError(f"'{folder}' holds a '{config.model_type}' model ({type(config).__name__}), not a "
                              f"vision-language (image-text-to-text) model") from error
    except OSError as error:
        raise CheckpointError(f"'{folder}': weights missing or unreadable: {error}") from error
    tokenizer = PreTrainedTokenizerFast.from_pretrained(folder, local_files_only=True)
    meta = json.loads((folder / VLA_META).read_text())
    meta["action_tokenizer"] = tokenizer_from_json(json.dumps(meta["action_tokenizer"]))
    meta["state_tokenizer"] = tokenizer_from_json(json.dumps(meta["state_tokenizer"]))
    if "object_tokenizer" in meta:
        meta["object_tokenizer"] = tokenizer_from_json(json.dumps(meta["object_tokenizer"]))
    return model.eval(), tokenizer, meta


def image_tensor(image: np.ndarray | None, size: int) -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> (3, size, size) float in [-1, 1]; a black frame when there is no image."""
    if image is None:
        return torch.full((3, size, size), -1.0)
    small = cv2.resize(np.asarray(image, np.uint8), (size, size), interpolation=cv2.INTER_AREA)
    return torch.from_numpy(small).permute(2, 0, 1).float() / 127.5 - 1.0


def prompt_ids(tokenizer: Any, meta: dict[str, Any], instruction: str, state: np.ndarray, image_tokens: int,
               image_token_id: int, object_position: np.ndarray | None = None) -> list[int]:
    """Token ids of [image] * n, <bos>, instruction, state bins and object bins (as action tokens)."""
    text = meta.get("prompt_template", "{instruction}").format(instruction=instruction)
    words = tokenizer(text, add_special_tokens=False)["input_ids"]
    offset = meta["action_token_offset"]
    proprio = (meta["state_tokenizer"].encode(np.asarray(state, float)[None]) + offset).tolist()
    if "object_tokenizer" in meta:
        position = np.nan_to_num(np.asarray(object_position if object_position is not None else np.zeros(3), float))
        proprio += (meta["object_tokenizer"].encode(position[None]) + offset).tolist()
    return [image_token_id] * image_tokens + [tokenizer.bos_token_id, *words, *proprio]


def end_token(meta: dict[str, Any]) -> int | None:
    """Index in the action block of the token that ends a variable-length (DCT) chunk; None for binning."""
    return meta.get("action_end_token")


def action_token_ids(meta: dict[str, Any], actions: np.ndarray) -> list[int]:
    """(H, J) actions (offsets from the state with ``relative_actions``) -> vocabulary ids of their tokens
    (a DCT chunk ends with the end token)."""
    block = meta["action_tokenizer"].encode(actions).tolist()
    if end_token(meta) is not None:
        block.append(end_token(meta))
    return [meta["action_token_offset"] + t for t in block]


def chunk_from_tokens(meta: dict[str, Any], tokens: np.ndarray) -> np.ndarray:
    """Action-block indices -> (H, J) actions: a DCT chunk stops at its end token, binning reads H x J tokens."""
    tokens = np.asarray(tokens, np.int64)
    end = end_token(meta)
    if end is not None and np.any(tokens == end):
        tokens = tokens[: int(np.argmax(tokens == end))]
    return meta["action_tokenizer"].decode(tokens, meta["action_horizon"])


class VLAPolicy(Policy):
    """Camera image + instruction + joint state -> (H, J) joint targets (see module doc)."""

    capabilities = Capabilities(needs_image=True, takes_instruction=True, stochastic=True)
    input_features = (STATE, OBJECT, COLOR, TASK)

    def __init__(self, folder: Path, joint_names: tuple[str, ...], horizon: int = 10, chunk_dt: float = 0.1,
                 instruction: str = "", temperature: float = 1.0, seed: int = 0) -> None:
        self.model, self.tokenizer, self.meta = load_vla(Path(folder))
        if sorted(self.meta["joint_names"]) != sorted(joint_names):
            raise CheckpointError(f"VLA '{folder}' was trained on joints {self.meta['joint_names']}, the node runs "
                                  f"{list(joint_names)}")
        self.joint_names = self.joint_order = tuple(self.meta["joint_names"])  # the node feeds it in this order
        self.horizon, self.chunk_dt = horizon, chunk_dt
        self.temperature = temperature
        self.instruction = ""  # until one is set or published, no chunk (a VLA trained on several has no default)
        if instruction or self.meta.get("default_instruction"):
            self.set_instruction(instruction or self.meta["default_instruction"])
        config = self.model.config
        self.image_token_id = config.image_token_id if hasattr(config, "image_token_id") else config.image_token_index
        vision = config.vision_config
        self.image_tokens = (vision.image_size // vision.patch_size) ** 2
        self.action_tokenizer: BinningTokenizer | DCTTokenizer = self.meta["action_tokenizer"]
        self.generator = torch.Generator().manual_seed(seed)

    def set_instruction(self, instruction: str) -> None:
        """Raises ValueError on an empty instruction (a VLA needs one)."""
        if not instruction.strip():
            raise ValueError("the VLA needs a language instruction; set the parameter 'instruction' or publish "
                             "one on /policy/instruction")
        self.instruction = instruction.strip()

    def reset(self) -> None:
        pass

    @torch.no_grad()
    def sample_candidates(self, observation: Observation, num_samples: int,
                          prefix: CommittedPrefix | None = None) -> np.ndarray:
        """(N, H, J) joint targets at ``stamp + chunk_dt * (1..H)``; N = 1 decodes greedily."""
        if prefix is not None:
            raise ValueError("the VLA cannot keep a committed prefix (transition rtc/prefix)")
        if not self.instruction:
            raise ValueError("the VLA has no instruction yet; publish one on /policy/instruction or set the "
                             "parameter 'instruction'")
        meta = self.meta
        ids = prompt_ids(self.tokenizer, meta, self.instruction, observation.joint_positions, self.image_tokens,
                         self.image_token_id, observation.object_position)
        tokens = self._decode(torch.tensor([ids] * num_samples),
                              image_tensor(observation.image, meta["image_size"])[None].expand(num_samples, -1, -1, -1),
                              meta["action_horizon"] * len(self.joint_names), sample=num_samples > 1)
        chunks = np.stack([chunk_from_tokens(meta, t) for t in tokens])
        state = np.asarray(observation.joint_positions, float)
        if meta.get("relative_actions"):
            chunks = chunks + state
        # the arm is at the state at the observation (t = 0): the node's first point (chunk_dt, sooner than the
        # model's first, action_dt) lies on the way there, not already at it (held, it was a step twice as steep)
        chunks = np.concatenate([np.broadcast_to(state, (len(chunks), 1, state.size)), chunks], axis=1)
        return resample_in_time(self.chunk_dt * np.arange(1, self.horizon + 1),
                                meta["action_dt"] * np.arange(0, meta["action_horizon"] + 1), chunks)

    def _decode(self, ids: torch.Tensor, pixels: torch.Tensor, count: int, sample: bool) -> np.ndarray:
        """(N, L) prompts -> (N, <= count) action-block indices: KV-cached decoding restricted to the tokenizer's
        tokens (and, for DCT, its end token; a sequence that ended keeps emitting it; all ended: done)."""
        offset, end = self.meta["action_token_offset"], end_token(self.meta)
        size = self.action_tokenizer.vocab_size + (end is not None)
        length = ids.shape[1]
        ended = torch.zeros(ids.shape[0], dtype=torch.bool)
        # token types: 0 = prefix (image, prompt, proprioception; attends both ways), 1 = generated actions (causal)
        out = self.model(input_ids=ids, pixel_values=pixels, attention_mask=torch.ones_like(ids),
                         token_type_ids=torch.zeros_like(ids), use_cache=True)
        chosen = []
        for step in range(count):
            logits = out.logits[:, -1, offset:offset + size]
            if sample:
                probs = torch.softmax(logits / max(self.temperature, 1e-3), dim=-1)
                bins = torch.multinomial(probs, 1, generator=self.generator)[:, 0]
            else:
                bins = logits.argmax(dim=-1)
            if end is not None:
                bins = torch.where(ended, end, bins)
                ended |= bins == end
            chosen.append(bins)
            if step + 1 < count and not ended.all():
                mask = torch.ones(ids.shape[0], length + step + 1, dtype=torch.long)
                out = self.model(input_ids=(bins + offset)[:, None], cache=out.cache, attention_mask=mask,
                                 token_type_ids=torch.ones(ids.shape[0], 1, dtype=torch.long), use_cache=True)
            elif step + 1 < count:
                break
        return torch.stack(chosen, dim=1).numpy()

    def predict_action_chunk(self, observation: Observation) -> np.ndarray:
        return self.sample_candidates(observation, 1)[0]
