"""Evaluation bookkeeping: rates, latency percentiles, summaries, contact sheets."""

from __future__ import annotations

import math

import numpy as np
import pytest

from armpilot.evaluation import EpisodeResult, LatencyLog, RateMeter, contact_sheet, episode_summary, format_summary


def test_rate_meter():
    meter = RateMeter()
    assert meter.rate_hz() == 0.0
    for k in range(11):
        meter.tick(k * 0.1)
    assert meter.rate_hz() == pytest.approx(10.0)


def test_latency_summary():
    log = LatencyLog()
    assert log.summary_ms()["count"] == 0 and math.isnan(log.summary_ms()["p50"])
    for ms in range(1, 101):
        log.add(ms / 1000)
    summary = log.summary_ms()
    assert summary["count"] == 100 and abs(summary["p50"] - 50.5) < 1e-9 and summary["max"] == 100


def test_episode_summary_and_table():
    results = [EpisodeResult(0, 0, True, 2.0, 2.1), EpisodeResult(1, 1, False, 12.0, 12.0)]
    summary = episode_summary(results)
    assert summary["success_rate"] == 0.5 and summary["episode_time_s"]["mean_success"] == 2.0
    report = {**summary, "task": "reach", "policy": "scripted", "command_latency_ms": LatencyLog().summary_ms(),
              "real_time_factor": 1.0, "topic_rates_hz": {"/joint_states": 125.0}, "safety": {"accepted": 3}}
    text = format_summary(report)
    assert "50.0 %" in text and "/joint_states" in text
    assert summary["by_distractors"] == {} and summary["failed_goal_distance_m_p50"] is None


def test_episode_summary_reads_success_by_distractors_and_how_far_the_failures_ended():
    results = [EpisodeResult(0, 0, True, 2.0, 2.1, 0.01, {"distractors": 0}),
               EpisodeResult(1, 1, False, 12.0, 12.0, 0.05, {"distractors": 2}),
               EpisodeResult(2, 2, False, 12.0, 12.0, 0.07, {"distractors": 0}),
               EpisodeResult(3, 3, True, 3.0, 3.0, None, {})]
    summary = episode_summary(results)
    assert summary["by_distractors"] == {"0": "1/2", "2": "0/1"}
    assert summary["failed_goal_distance_m_p50"] == pytest.approx(0.06)
    report = {**summary, "task": "push", "policy": "diffusion", "command_latency_ms": LatencyLog().summary_ms(),
              "real_time_factor": 1.0, "topic_rates_hz": {}}
    text = format_summary(report)
    assert "success by distractors 0: 1/2, 2: 0/1" in text and "p50 6.0 cm from the goal" in text


def test_contact_sheet_tiles():
    frames = [(f"f{k}", np.full((48, 64, 3), 40 * k, np.uint8)) for k in range(5)]
    sheet = contact_sheet(frames, columns=3, width=64)
    assert sheet.shape == (2 * 48, 3 * 64, 3)
    assert sheet[-1, -1].sum() == 0  # padding tile


def test_rejection_log_throttles_per_reason():
    from armpilot.rejections import RejectionLog

    now = [0.0]
    log = RejectionLog(throttle_s=1.0, clock=lambda: now[0])
    assert log.record("not_finite", "a") is True
    assert log.record("not_finite", "b") is False  # same reason within a second
    assert log.record("missing_joint", "c") is True  # another reason is not hidden
    now[0] = 1.5
    assert log.record("not_finite", "d") is True
    assert log.counts == {"not_finite": 3, "missing_joint": 1} and log.total() == 4
    assert log.last == "not_finite: d"
