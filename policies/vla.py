"""``vla`` backend: a Hugging Face vision-language model that speaks action tokens (RT-2 / OpenVLA style).

A model folder (never fetched at run time: ``local_files_only``) holds the
transformers model (``config.json`` + safetensors), its tokenizer, and
``armpilot_vla.json``::

    {"joint_names": [...], "action_token_offset": int, "action_tokenizer": <BinningTokenizer JSON>,
     "state_tokenizer": <BinningTokenizer JSON>, "action_horizon": 5, "action_dt": 0.2, "image_size": 32,
     "prompt_template": "{instruction}"}

Prompt: the camera image (resized, SigLIP normalisation), then the tokenised
instruction, then the joint state as ``state_tokenizer`` bins mapped onto the
action-token block; the model continues with ``action_horizon x J`` action
tokens (generation is constrained to that block), which the binning tokenizer
turns back into joint positions. N candidates = N sampled sequences.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from armpilot.policies.action_tokenizers import BinningTokenizer, tokenizer_from_json
from armpilot.policies.base import Observation
from armpilot.policies.diffusion_checkpoint import CheckpointError

VLA_META = "armpilot_vla.json"


class ActionTokenMask:
    """A logits processor that allows only the action-token block [offset, offset + size)."""

    def __init__(self, offset: int, size: int) -> None:
        self.offset, self.size = offset, size

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        masked = torch.full_like(scores, float("-inf"))
        masked[:, self.offset:self.offset + self.size] = scores[:, self.offset:self.offset + self.size]
        return masked


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
    return model.eval(), tokenizer, meta


def image_tensor(image: np.ndarray | None, size: int) -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> (3, size, size) float in [-1, 1]; a black frame when there is no image."""
    if image is None:
        return torch.full((3, size, size), -1.0)
    small = cv2.resize(np.asarray(image, np.uint8), (size, size), interpolation=cv2.INTER_AREA)
    return torch.from_numpy(small).permute(2, 0, 1).float() / 127.5 - 1.0


def prompt_ids(tokenizer: Any, meta: dict[str, Any], instruction: str, state: np.ndarray, image_tokens: int,
               image_token_id: int) -> list[int]:
    """Token ids of [image] * n, <bos>, instruction, state bins (as action tokens)."""
    text = meta.get("prompt_template", "{instruction}").format(instruction=instruction)
    words = tokenizer(text, add_special_tokens=False)["input_ids"]
    state_tokens = meta["state_tokenizer"].encode(np.asarray(state, float)[None]) + meta["action_token_offset"]
    return [image_token_id] * image_tokens + [tokenizer.bos_token_id, *words, *state_tokens.tolist()]


class VLAPolicy:
    """Camera image + instruction + joint state -> (H, J) joint targets (see module doc)."""

    needs_image = True

    def __init__(self, folder: Path, joint_names: tuple[str, ...], horizon: int = 10, chunk_dt: float = 0.1,
                 instruction: str = "", temperature: float = 1.0, seed: int = 0) -> None:
        self.model, self.tokenizer, self.meta = load_vla(Path(folder))
        if tuple(self.meta["joint_names"]) != tuple(joint_names):
            raise CheckpointError(f"VLA '{folder}' was trained on joints {self.meta['joint_names']}, the node runs "
                                  f"{list(joint_names)}")
        self.joint_names, self.horizon, self.chunk_dt = tuple(joint_names), horizon, chunk_dt
        self.temperature = temperature
        self.instruction = ""
        self.set_instruction(instruction or self.meta.get("default_instruction", ""))
        config = self.model.config
        self.image_token_id = config.image_token_id if hasattr(config, "image_token_id") else config.image_token_index
        vision = config.vision_config
        self.image_tokens = (vision.image_size // vision.patch_size) ** 2
        self.action_tokenizer: BinningTokenizer = self.meta["action_tokenizer"]
        self.mask = ActionTokenMask(self.meta["action_token_offset"], self.action_tokenizer.bins)
        torch.manual_seed(seed)

    def set_instruction(self, instruction: str) -> None:
        """Raises ValueError on an empty instruction (a VLA needs one)."""
        if not instruction.strip():
            raise ValueError("the VLA needs a language instruction; set the parameter 'instruction' or publish "
                             "one on /policy/instruction")
        self.instruction = instruction.strip()

    def reset(self) -> None:
        pass

    @torch.no_grad()
    def sample_candidates(self, observation: Observation, num_samples: int) -> np.ndarray:
        """(N, H, J) joint targets at ``stamp + chunk_dt * (1..H)``; N = 1 decodes greedily."""
        meta = self.meta
        ids = prompt_ids(self.tokenizer, meta, self.instruction, observation.joint_positions, self.image_tokens,
                         self.image_token_id)
        count = meta["action_horizon"] * len(self.joint_names)
        generated = self.model.generate(
            input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
            pixel_values=image_tensor(observation.image, meta["image_size"])[None],
            max_new_tokens=count, min_new_tokens=count, logits_processor=[self.mask],
            num_return_sequences=num_samples, pad_token_id=self.tokenizer.pad_token_id,
            **({"do_sample": True, "temperature": self.temperature, "top_k": None} if num_samples > 1
               else {"do_sample": False}))
        tokens = generated[:, len(ids):].numpy() - meta["action_token_offset"]
        chunks = np.stack([self.action_tokenizer.decode(t, meta["action_horizon"]) for t in tokens])
        native = meta["action_dt"] * np.arange(1, meta["action_horizon"] + 1)
        times = self.chunk_dt * np.arange(1, self.horizon + 1)
        return np.stack([np.stack([np.interp(times, native, c[:, j]) for j in range(c.shape[1])], -1)
                         for c in chunks])

    def predict_action_chunk(self, observation: Observation) -> np.ndarray:
        return self.sample_candidates(observation, 1)[0]
