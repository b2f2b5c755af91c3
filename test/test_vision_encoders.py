"""Image and point-cloud encoders: what they compute, not only their shapes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from armpilot.policies.diffusion_config import POINT_ENCODERS
from armpilot.policies.point_keypoints import KeypointCloudEncoder, point_encoder
from armpilot.policies.vision_encoders import (
    ImageEncoder,
    ImageEncoderConfig,
    PointCloudEncoder,
    SpatialSoftmax,
    square_frames,
    subsample_points,
)

SMALL = ImageEncoderConfig(crop=40, widths=(16, 16, 32, 32), blocks=(1, 1, 1, 1), keypoints=8, out_dim=16)


def test_spatial_softmax_finds_the_hot_spot():
    layer = SpatialSoftmax(channels=1, keypoints=1)
    with torch.no_grad():
        layer.project.weight.fill_(1.0)
        layer.project.bias.zero_()
    features = torch.zeros(1, 1, 9, 17)
    features[0, 0, 2, 12] = 50.0  # row 2 of 0..8 -> y = -0.5; column 12 of 0..16 -> x = 0.5
    assert layer(features)[0].tolist() == pytest.approx([0.5, -0.5], abs=1e-4)


def test_image_embedding_does_not_depend_on_the_batch():
    torch.manual_seed(0)
    encoder = ImageEncoder(SMALL).eval()
    images = torch.rand(4, 3, 48, 48)
    with torch.no_grad():
        together = encoder(images)
        alone = torch.cat([encoder(images[i:i + 1]) for i in range(4)])
    assert together.shape == (4, SMALL.out_dim)
    assert torch.allclose(together, alone, atol=1e-5)  # GroupNorm: no batch statistics
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in encoder.modules())


def test_training_crops_randomly_and_inference_crops_the_centre():
    encoder = ImageEncoder(SMALL)
    images = torch.arange(2 * 3 * 48 * 48, dtype=torch.float32).view(2, 3, 48, 48)
    encoder.eval()
    centre = encoder.crop(images)
    assert torch.equal(centre, images[..., 4:44, 4:44])
    encoder.train()
    crops = [encoder.crop(images, torch.Generator().manual_seed(seed)) for seed in range(5)]
    assert all(c.shape == (2, 3, 40, 40) for c in crops)
    assert len({c[0, 0, 0, 0].item() for c in crops}) > 1, "training crops never moved"
    with pytest.raises(ValueError, match="smaller than the 40 px crop"):
        encoder.crop(torch.zeros(1, 3, 32, 64))


def test_the_image_encoder_learns_where_a_bright_square_is():
    """A few steps of regression of the square's position: the loss falls (gradients reach every stage)."""
    torch.manual_seed(1)
    encoder = ImageEncoder(SMALL)
    head = torch.nn.Linear(SMALL.out_dim, 2)
    optimizer = torch.optim.Adam([*encoder.parameters(), *head.parameters()], lr=3e-3)

    def batch(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        where = torch.randint(4, 36, (n, 2))
        images = torch.zeros(n, 3, 48, 48)
        for i, (row, column) in enumerate(where.tolist()):
            images[i, :, row:row + 8, column:column + 8] = 1.0
        return images, where.float() / 48

    losses = []
    for _ in range(60):
        images, target = batch(16)
        loss = torch.nn.functional.mse_loss(head(encoder(images)), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert sum(losses[-10:]) / 10 < 0.5 * sum(losses[:10]) / 10, losses


@pytest.mark.parametrize("kind", POINT_ENCODERS)
def test_point_encoder_ignores_order_and_masked_points(kind):
    torch.manual_seed(2)
    encoder = point_encoder(kind, out_dim=32).eval()
    cloud = torch.rand(2, 100, 3)
    shuffled = cloud[:, torch.randperm(100)]
    assert torch.allclose(encoder(cloud), encoder(shuffled), atol=1e-6)
    padded = torch.cat([cloud, 50.0 * torch.ones(2, 20, 3)], dim=1)  # far-away padding, masked out
    mask = torch.zeros(2, 120, dtype=torch.bool)
    mask[:, :100] = True
    assert torch.allclose(encoder(padded, mask), encoder(cloud), atol=1e-6)
    assert not torch.allclose(encoder(padded), encoder(cloud), atol=1e-3)
    empty = encoder(cloud, torch.zeros(2, 100, dtype=torch.bool))
    assert torch.isfinite(empty).all()
    ragged = mask.clone()
    ragged[0, 60:] = False  # one cloud of 60 points, one of 100, in one batch
    alone = encoder(cloud[:1, :60])
    assert torch.allclose(encoder(padded, ragged)[0], alone[0], atol=1e-6)


def test_soft_keypoints_are_weighted_means_of_the_valid_points_only():
    """Every keypoint lies in the box of the valid points, whatever the masked slots hold; a cloud with no
    valid point gives zeros, not NaN."""
    torch.manual_seed(0)
    encoder = KeypointCloudEncoder(out_dim=16, keypoints=6).eval()
    cloud = torch.rand(3, 80, 3) * torch.tensor([0.2, 0.1, 0.05]) + torch.tensor([0.4, -0.1, 0.0])
    mask = torch.ones(3, 80, dtype=torch.bool)
    mask[1, 50:] = False
    mask[2] = False
    cloud[1, 50:] = 9.0  # far away, masked out
    with torch.no_grad():
        pooled, keypoints = encoder.locate(cloud, mask)
    assert keypoints.shape == (3, 6, 3) and pooled.shape[0] == 3
    for index in (0, 1):
        valid = cloud[index][mask[index]]
        assert (keypoints[index] >= valid.amin(0) - 1e-6).all() and (keypoints[index] <= valid.amax(0) + 1e-6).all()
    assert torch.equal(keypoints[2], torch.zeros(6, 3)) and torch.isfinite(encoder(cloud, mask)).all()
    cloud[1, 50:] = float("nan")  # whatever a masked slot holds
    trainable = KeypointCloudEncoder(out_dim=16, keypoints=6)
    cloud.requires_grad_(True)
    trainable(cloud, mask).sum().backward()
    assert torch.isfinite(cloud.grad).all() and all(torch.isfinite(p.grad).all() for p in trainable.parameters())


def test_neighbourhoods_tell_a_cube_from_a_pillar_at_the_same_height():
    """A point 3 cm up the side of a 5 cm cube and one 3 cm up a 10 cm pillar have the same coordinates; a
    per-point MLP cannot tell them apart. Their local features can: the pillar goes on above 5 cm."""
    torch.manual_seed(1)
    encoder = KeypointCloudEncoder(out_dim=16).eval()

    def side(height_cm: int) -> torch.Tensor:  # (1, n, 3): a vertical line of points 1 cm apart, the probe first
        heights = torch.tensor([3.0, *range(height_cm + 1)]) / 100
        return torch.stack([torch.zeros_like(heights), torch.zeros_like(heights), heights], dim=-1)[None]

    def probe_feature(height_cm: int) -> torch.Tensor:
        cloud = side(height_cm)
        with torch.no_grad():
            return encoder._local(cloud, torch.ones(cloud.shape[:2], dtype=torch.bool))[0, 0]

    assert not torch.allclose(probe_feature(5), probe_feature(10), atol=1e-3)


def test_the_point_encoder_is_chosen_by_name():
    assert isinstance(point_encoder("pointnet"), PointCloudEncoder)
    assert isinstance(point_encoder("keypoints"), KeypointCloudEncoder)
    with pytest.raises(ValueError, match="unknown point encoder 'voxels'"):
        point_encoder("voxels")


def test_subsampling_draws_without_repeats_and_pads_small_clouds():
    points = torch.arange(30, dtype=torch.float32).view(10, 3)
    drawn = subsample_points(points, 4, torch.Generator().manual_seed(0))
    assert drawn.shape == (4, 3) and len({tuple(p) for p in drawn.tolist()}) == 4
    padded = subsample_points(points[:3], 7)
    assert padded.shape == (7, 3) and {tuple(p) for p in padded.tolist()} == {tuple(p) for p in points[:3].tolist()}
    with pytest.raises(ValueError, match="empty"):
        subsample_points(points[:0], 4)


def test_square_frames_resizes_only_the_region_it_is_given():
    frame = np.zeros((240, 320, 3), np.uint8)
    frame[120:180, 160:240] = 255  # a white patch in the lower right quarter's upper half
    whole = square_frames(frame, 64)
    region = square_frames(frame, 64, (0.5, 0.5, 1.0, 1.0))  # the lower right quarter only
    assert whole.shape == region.shape == (3, 64, 64)
    assert np.isclose((whole[0] > 127).mean(), 0.0625, atol=0.01)  # 80 x 60 of 320 x 240
    assert np.isclose((region[0] > 127).mean(), 0.25, atol=0.02)  # the same patch, four times the pixels
    assert (region[0, :32, :32] > 127).all() and (region[0, 34:, :] == 0).all()
    with pytest.raises(ValueError, match="left < right"):
        square_frames(frame, 64, (0.6, 0.0, 0.4, 1.0))
