"""The tiny VLA built here can learn what an instruction says: a toy set where one word decides the motion."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from armpilot.policies.base import Observation
from armpilot.policies.vla import VLAPolicy, action_token_ids, chunk_from_tokens, load_vla, prompt_ids
from armpilot.policies.vla_training import build_tiny_vla, ordinal_embeddings

JOINTS = ("a", "b", "c")
MOTION = {"move left": 0.3, "move right": -0.3}  # joint a's offset over the whole chunk, rad


def _toy_examples(folder, count: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids (count, L), action mask (count, L)): random joint states; the word alone decides joint a's motion."""
    model, tokenizer, meta = load_vla(folder)
    config = model.config
    image_tokens = (config.vision_config.image_size // config.vision_config.patch_size) ** 2
    rng = np.random.default_rng(0)
    ids, masks = [], []
    for k in range(count):
        instruction = list(MOTION)[k % 2]
        prefix = prompt_ids(tokenizer, meta, instruction, rng.uniform(-0.5, 0.5, 3), image_tokens,
                            config.image_token_index, np.zeros(3))
        chunk = np.tile([MOTION[instruction], 0.0, 0.1], (meta["action_horizon"], 1))
        actions = action_token_ids(meta, chunk)
        ids.append(prefix + actions)
        masks.append([False] * len(prefix) + [True] * len(actions))
    return torch.tensor(ids), torch.tensor(masks)


@pytest.mark.parametrize("action_tokens", ["binning", "dct"])
def test_one_word_of_the_instruction_decides_the_chunk(tmp_path, action_tokens):
    folder = build_tiny_vla(tmp_path / "vla", JOINTS, np.full(3, -1.0), np.full(3, 1.0), action_tokens=action_tokens,
                            relative_range=(np.full(3, -0.5), np.full(3, 0.5)), default_instruction="move left")
    ids, mask = _toy_examples(folder)
    model, _, _ = load_vla(folder)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    generator = torch.Generator().manual_seed(0)
    for _ in range(80):
        index = torch.randint(len(ids), (32,), generator=generator)
        logits = model(input_ids=ids[index], pixel_values=torch.full((32, 3, 32, 32), -1.0),
                       attention_mask=torch.ones_like(ids[index]), token_type_ids=mask[index].long()).logits
        target = mask[index][:, 1:]
        loss = F.cross_entropy(logits[:, :-1][target], ids[index][:, 1:][target])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    # (a black frame, as the policy sends without a camera)
    # the unconditional optimum: ln 2 on a third of the tokens (0.23; DCT: a quarter, 0.17); below it, the word is read
    assert loss.item() < 0.1
    model.eval().save_pretrained(folder)
    policy = VLAPolicy(folder, JOINTS, horizon=5, chunk_dt=0.2)
    state = np.array([0.1, -0.2, 0.0])
    observation = Observation(0.0, JOINTS, state, np.zeros(3), 0.0, np.zeros(3))
    for instruction, offset in MOTION.items():
        policy.set_instruction(instruction)
        chunk = policy.predict_action_chunk(observation)
        np.testing.assert_allclose(chunk[:, 0] - state[0], offset, atol=0.02)


def test_ordinal_bin_embeddings_keep_neighbours_near():
    table = ordinal_embeddings(256, 64, 0.1).double()
    assert table.shape == (256, 64)
    assert abs(table.pow(2).mean().sqrt().item() - 0.1) < 0.01  # the spread asked for
    distance = torch.cdist(table, table)
    neighbours, far = distance[np.arange(255), np.arange(1, 256)], distance[np.arange(128), np.arange(128) + 128]
    assert neighbours.max() < far.min()
    assert len(torch.unique(table, dim=0)) == 256  # every bin its own


def test_a_vla_without_a_default_instruction_waits_for_one(tmp_path):
    folder = build_tiny_vla(tmp_path / "vla", JOINTS, np.full(3, -1.0), np.full(3, 1.0))  # several instructions
    policy = VLAPolicy(folder, JOINTS, horizon=5, chunk_dt=0.2)
    observation = Observation(0.0, JOINTS, np.zeros(3), np.zeros(3), 0.0, np.zeros(3))
    with pytest.raises(ValueError, match="no instruction yet.*/policy/instruction"):
        policy.predict_action_chunk(observation)
    policy.set_instruction("touch the blue box")
    assert policy.predict_action_chunk(observation).shape == (5, 3)


def test_the_first_points_lie_between_the_state_and_the_models_first_step(tmp_path):
    folder = build_tiny_vla(tmp_path / "vla", JOINTS, np.full(3, -1.0), np.full(3, 1.0),
                            relative_range=(np.full(3, -0.5), np.full(3, 0.5)), default_instruction="move left")
    policy = VLAPolicy(folder, JOINTS, horizon=10, chunk_dt=0.1)  # the model's steps are 0.2 s apart
    state = np.array([0.1, -0.2, 0.0])
    chunk = policy.predict_action_chunk(Observation(0.0, JOINTS, state, np.zeros(3), 0.0, np.zeros(3)))
    np.testing.assert_allclose(chunk[0], (state + chunk[1]) / 2)  # 0.1 s: halfway to the model's 0.2 s point


def test_dct_action_tokens_end_early_and_read_back(tmp_path):
    folder = build_tiny_vla(tmp_path / "vla", JOINTS, np.full(3, -1.0), np.full(3, 1.0), action_tokens="dct",
                            relative_range=(np.full(3, -0.5), np.full(3, 0.5)))
    _, _, meta = load_vla(folder)
    horizon = meta["action_horizon"]
    smooth = np.linspace(0.0, 1.0, horizon)[:, None] * np.array([0.4, -0.2, 0.1])  # a straight run
    ids = action_token_ids(meta, smooth)
    block = np.array(ids) - meta["action_token_offset"]
    assert block[-1] == meta["action_end_token"] and len(ids) < horizon * len(JOINTS)  # fewer than binning's 15
    np.testing.assert_allclose(chunk_from_tokens(meta, block), smooth, atol=0.02)  # scale 20 on a 1 rad range
    np.testing.assert_allclose(chunk_from_tokens(meta, np.append(block, [3, 4])), smooth, atol=0.02)  # after the end
