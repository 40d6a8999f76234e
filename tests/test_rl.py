"""Zero-shot RL harness: agents trained in NeuralSim ids, scored in the real env."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from neural_sim import load as neural_sim_load
from neural_sim.checkpoints import weights_fingerprint
from neural_sim.cli import main
from neural_sim.errors import NeuralSimError, UnknownNameError
from neural_sim.hub import resolve_checkpoint
from neural_sim.rl import RealEnvEvaluation, few_shot, make_agent, real_env_id, real_sample_efficiency, zero_shot
from neural_sim.rl.real_env import make_real_env, score_policy
from neural_sim.rl.runs import PLOT_FILE, RESULTS_FILE

QUIET = {"progress": False, "log": lambda _: None}


def test_each_neural_sim_id_names_the_real_env_it_mirrors() -> None:
    assert real_env_id("NeuralSim/Acrobot-v0") == "dm_control/acrobot-swingup-v0"
    assert real_env_id("NeuralSim/acrobot-swingup_sparse-v0") == "dm_control/acrobot-swingup_sparse-v0"
    assert real_env_id("neural_sim:NeuralSim/Cartpole-v0") == "dm_control/cartpole-swingup-v0"
    assert real_env_id("NeuralSim/InvertedPendulum-v5") == "InvertedPendulum-v5"
    with pytest.raises(UnknownNameError, match=r"not a registered NeuralSim env id.*NeuralSim/Acrobot-v0"):
        real_env_id("dm_control/acrobot-swingup-v0")


def test_agents_take_the_policy_their_observations_need() -> None:
    dict_env, box_env = gym.make("NeuralSim/Pendulum-v0"), gym.make("NeuralSim/InvertedPendulum-v5")
    assert type(make_agent("sac", dict_env, seed=0).policy).__name__ == "MultiInputPolicy"
    tqc = make_agent("tqc", box_env, seed=0)
    assert type(tqc.policy).__name__ == "TQCPolicy" and tqc.policy.critic_kwargs["n_critics"] == 5
    with pytest.raises(NeuralSimError, match="unknown algorithm 'ppo'"):
        make_agent("ppo", dict_env, seed=0)


def test_real_env_scores_are_full_episodes_and_repeatable() -> None:
    env = gym.make("NeuralSim/Pendulum-v0")
    agent = make_agent("sac", env, seed=0)
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv

    real = DummyVecEnv([lambda: Monitor(make_real_env("dm_control/pendulum-swingup-v0"))])
    first, again = score_policy(agent, real, 2, seed=3), score_policy(agent, real, 2, seed=3)
    assert first == again and len(first["returns"]) == 2
    # The same deterministic policy, run by hand for a full 1000-step real episode, scores the same.
    manual = make_real_env("dm_control/pendulum-swingup-v0")
    obs, _ = manual.reset(seed=3)
    total, steps, done = 0.0, 0, False
    while not done:
        obs, reward, terminated, truncated, _ = manual.step(agent.predict(obs, deterministic=True)[0])
        total, steps, done = total + float(reward), steps + 1, terminated or truncated
    assert steps == 1000 and total == pytest.approx(first["returns"][0])


def test_zero_shot_records_both_variants_resumes_and_plots(tmp_path: Path) -> None:
    settings = {"steps": 60, "seeds": (0,), "eval_every": 30, "eval_episodes": 1}
    results = zero_shot("NeuralSim/Pendulum-v0", out=tmp_path, **settings, **QUIET)
    runs = results["runs"]
    assert [r["steps"] for r in runs["neural_sim"]["0"]["evaluations"]] == [30, 60]
    assert [r["steps"] for r in runs["real"]["0"]["evaluations"]] == [30, 60]
    assert results["real_env_id"] == "dm_control/pendulum-swingup-v0"
    assert (tmp_path / PLOT_FILE).stat().st_size > 1000
    assert (tmp_path / "agents" / "neural_sim-seed0.zip").is_file()
    saved = json.loads((tmp_path / RESULTS_FILE).read_text())
    assert saved["summary"]["neural_sim"]["steps"] == [30, 60]

    lines: list[str] = []
    again = zero_shot("NeuralSim/Pendulum-v0", out=tmp_path, **settings, progress=False, log=lines.append)
    assert lines == [f"{v} seed 0: already done in {tmp_path}" for v in ("neural_sim", "real")]
    assert again["runs"] == runs
    with pytest.raises(NeuralSimError, match="other settings \\(steps differ\\)"):
        zero_shot("NeuralSim/Pendulum-v0", out=tmp_path, **{**settings, "steps": 90}, **QUIET)


def test_results_name_the_checkpoint_weights_they_were_trained_in(tmp_path: Path) -> None:
    settings = {"steps": 20, "seeds": (0,), "eval_every": 20, "eval_episodes": 1}
    results = zero_shot("NeuralSim/Pendulum-v0", out=tmp_path, **settings, **QUIET)
    fingerprint = weights_fingerprint(resolve_checkpoint("pendulum"), density=False)  # the run had no penalty
    assert fingerprint != weights_fingerprint(resolve_checkpoint("pendulum"))
    assert results["checkpoint_sha256"] == fingerprint
    assert results["runs"]["neural_sim"]["0"]["checkpoint_sha256"] == fingerprint
    assert "checkpoint_sha256" not in results["runs"]["real"]["0"]  # the real env has no checkpoint
    path = tmp_path / RESULTS_FILE
    saved = json.loads(path.read_text())
    path.write_text(json.dumps({**saved, "checkpoint_sha256": "0123456789ab"}))
    with pytest.raises(NeuralSimError, match=r"\(checkpoint_sha256 differ\)"):
        zero_shot("NeuralSim/Pendulum-v0", out=tmp_path, **settings, **QUIET)
    del saved["checkpoint_sha256"]  # files written before the fingerprint was recorded are still read
    path.write_text(json.dumps(saved))
    lines: list[str] = []
    zero_shot("NeuralSim/Pendulum-v0", out=tmp_path, **settings, progress=False, log=lines.append)
    assert lines == [f"{v} seed 0: already done in {tmp_path}" for v in ("neural_sim", "real")]


def test_seeds_run_at_once_into_one_folder_keep_each_others_runs(tmp_path: Path) -> None:
    settings = {"steps": 20, "eval_every": 20, "eval_episodes": 1, "reference": False, "progress": False}
    other, shared = tmp_path / "other", tmp_path / "shared"
    zero_shot("NeuralSim/Pendulum-v0", seeds=(0,), out=other, log=lambda _: None, **settings)

    def seed_zero_finishes_meanwhile(_: str) -> None:
        # Another process (seed 0) saves into the folder after this one (seed 1) loaded it.
        (shared / RESULTS_FILE).write_text((other / RESULTS_FILE).read_text())

    results = zero_shot("NeuralSim/Pendulum-v0", seeds=(1,), out=shared, log=seed_zero_finishes_meanwhile,
                        **settings)
    saved = json.loads((shared / RESULTS_FILE).read_text())
    assert sorted(saved["runs"]["neural_sim"]) == ["0", "1"] == sorted(results["runs"]["neural_sim"])
    assert saved["summary"]["neural_sim"]["seeds"] == [0, 1]


def test_rl_command_trains_with_the_density_penalty_and_task_resets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["rl", "NeuralSim/Pendulum-v0", "--steps", "40", "--seeds", "1", "--eval-every", "40",
            "--eval-episodes", "1", "--density-penalty", "1.0", "--reset-from", "task", "--no-reference",
            "--no-progress", "--out", str(tmp_path)]
    assert main(argv) == 0
    results = json.loads((tmp_path / RESULTS_FILE).read_text())
    assert results["density_penalty"] == 1.0 and results["runs"]["real"] == {}
    assert results["reset_from"] == "task"
    with pytest.raises(NeuralSimError, match=r"\(reset_from differ\)"):
        zero_shot("NeuralSim/Pendulum-v0", steps=40, seeds=(1,), eval_every=40, eval_episodes=1,
                  density_penalty=1.0, out=tmp_path, **QUIET)
    assert np.isfinite(results["runs"]["neural_sim"]["1"]["evaluations"][0]["mean"])
    assert "neural_sim: final real return" in capsys.readouterr().out


def test_rl_trains_in_episodes_of_the_length_asked_for(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[dict[str, object]] = []
    real_make = gym.make

    def recording_make(env_id: str, **kwargs: object) -> gym.Env:
        made.append({"id": env_id, **kwargs})
        return real_make(env_id, **kwargs)

    monkeypatch.setattr("neural_sim.rl.runs.gym.make", recording_make)
    argv = ["rl", "NeuralSim/Pendulum-v0", "--steps", "20", "--seeds", "0", "--eval-every", "20",
            "--eval-episodes", "1", "--max-episode-steps", "7", "--no-reference", "--no-progress", "--out",
            str(tmp_path)]
    assert main(argv) == 0
    assert {"id": "NeuralSim/Pendulum-v0", "max_episode_steps": 7} in made
    results = json.loads((tmp_path / RESULTS_FILE).read_text())
    assert results["max_episode_steps"] == 7
    # Its own episode length: the weights' fingerprint leaves the default one out (see
    # test_locomotion for a checkpoint whose default changes).
    pendulum = resolve_checkpoint("pendulum")
    assert results["checkpoint_sha256"] == weights_fingerprint(pendulum, density=False, episode_length=False)
    with pytest.raises(NeuralSimError, match=r"\(max_episode_steps differ\)"):
        zero_shot("NeuralSim/Pendulum-v0", steps=20, seeds=(0,), eval_every=20, eval_episodes=1, out=tmp_path,
                  **QUIET)
    with pytest.raises(NeuralSimError, match="max_episode_steps must be positive"):
        zero_shot("NeuralSim/Pendulum-v0", steps=20, max_episode_steps=0, **QUIET)


def test_rl_trains_in_a_given_checkpoint_and_records_its_weights(tmp_path: Path, tiny_checkpoint: Path) -> None:
    argv = ["rl", "NeuralSim/Acrobot-v0", "--checkpoint", str(tiny_checkpoint), "--steps", "20", "--seeds", "0",
            "--eval-every", "20", "--eval-episodes", "1", "--max-episode-steps", "5", "--no-reference",
            "--no-progress", "--out", str(tmp_path / "run")]
    assert main(argv) == 0
    results = json.loads((tmp_path / "run" / RESULTS_FILE).read_text())
    assert results["checkpoint"] == str(tiny_checkpoint)
    fingerprint = weights_fingerprint(tiny_checkpoint, episode_length=False)  # the run set its own length
    assert results["checkpoint_sha256"] == fingerprint
    assert results["checkpoint_sha256"] != weights_fingerprint(resolve_checkpoint("acrobot"), episode_length=False)
    assert results["runs"]["neural_sim"]["0"]["checkpoint_sha256"] == fingerprint
    with pytest.raises(NeuralSimError, match=r"\(checkpoint, checkpoint_sha256 differ\)"):  # never mixed
        zero_shot("NeuralSim/Acrobot-v0", steps=20, seeds=(0,), eval_every=20, eval_episodes=1,
                  max_episode_steps=5, out=tmp_path / "run", **QUIET)


def test_real_sample_efficiency_counts_real_samples_until_the_reference_final_return() -> None:
    def run(points: list[tuple[int, float]], key: str) -> dict[str, object]:
        return {"evaluations": [{key: x, "steps": x, "mean": y} for x, y in points]}

    reference = {"steps": 300, "runs": {"real": {"0": run([(100, 0.0), (200, 50.0), (300, 70.0)], "steps"),
                                                 "1": run([(100, 0.0), (200, 30.0), (300, 90.0)], "steps")}}}
    few = {"runs": {"few_shot": {"0": run([(10, 60.0), (20, 55.0), (30, 80.0), (40, 70.0)], "real_steps"),
                                 "1": run([(10, 60.0), (20, 65.0), (30, 40.0), (40, 70.0)], "real_steps")}}}
    summary = real_sample_efficiency(few, reference, last_evaluations=2)
    # Target: per seed the mean of the last 2 evaluations (60, 60), then over seeds. The
    # few-shot mean curve, averaged over 2 evaluations at a time, first reaches it at 20 real
    # samples (60, 60), not at 10 (one evaluation is not enough).
    assert summary["target_return"] == 60.0 and summary["mean_return"] == [60.0, 60.0, 60.0, 70.0]
    assert summary["real_samples_to_target"] == 20 and summary["fewer_real_samples"] == 15.0
    # At equal real samples: the reference had not been scored by 40 real samples.
    assert summary["reference_at_final_real_samples"] is None
    # Judged over the same real samples as the few-shot final return (200 to 300 here): per
    # seed (50 + 70) / 2 and (30 + 90) / 2; with no evaluation there, the latest before counts.
    late = {"runs": {"few_shot": {"0": run([(100, 5.0), (200, 6.0), (300, 7.0)], "real_steps")}}}
    assert real_sample_efficiency(late, reference, last_evaluations=2)["reference_at_final_real_samples"] == 60.0
    # The other way round: the few-shot best window (60, 70 -> 65, at 40 real samples) is more
    # than the reference ever reached over a window (mean curve 0, 40, 80 -> 20, 60).
    assert summary["best_window_return"] == 65.0 and summary["real_samples_to_best_window"] == 40
    assert summary["reference_real_samples_to_best_window"] is None and summary["fewer_real_samples_at_best"] is None
    weak = real_sample_efficiency(late, reference, last_evaluations=2)  # best window 6.5 at 300; reference: 200
    assert weak["reference_real_samples_to_best_window"] == 200 and weak["fewer_real_samples_at_best"] == 200 / 300
    between = {"runs": {"few_shot": {"0": run([(100, 5.0), (140, 6.0), (160, 7.0)], "real_steps")}}}
    assert real_sample_efficiency(between, reference, last_evaluations=2)["reference_at_final_real_samples"] == 0.0
    spike = {"runs": {"few_shot": {"0": run([(10, 1.0), (20, 90.0), (30, 3.0)], "real_steps")}}}
    assert real_sample_efficiency(spike, reference)["fewer_real_samples"] is None


def test_few_shot_command_scores_against_a_real_env_reference(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tiny = {"steps": 40, "eval_every": 20, "eval_episodes": 1, "seeds": (0,), **QUIET}
    zero_shot("NeuralSim/Pendulum-v0", out=tmp_path / "reference", **tiny)
    argv = ["few-shot", "NeuralSim/Pendulum-v0", "--reference", str(tmp_path / "reference"), "--steps", "40",
            "--every", "20", "--real-steps", "10", "--finetune-iterations", "5", "--seeds", "0",
            "--no-progress", "--out", str(tmp_path / "few")]
    assert main(argv) == 0
    results = json.loads((tmp_path / "few" / RESULTS_FILE).read_text())
    evaluations = results["runs"]["few_shot"]["0"]["evaluations"]
    assert [(e["steps"], e["real_steps"]) for e in evaluations] == [(20, 10), (40, 20)]
    assert [c["real_steps_total"] for c in results["runs"]["few_shot"]["0"]["collections"]] == [10, 20]
    reference = json.loads((tmp_path / "reference" / RESULTS_FILE).read_text())
    real_final = statistics.mean(e["mean"] for e in reference["runs"]["real"]["0"]["evaluations"][-3:])
    assert results["summary"]["target_return"] == pytest.approx(real_final)
    assert (tmp_path / "few" / PLOT_FILE).stat().st_size > 1000
    assert "target: " in capsys.readouterr().out

    zero_shot("NeuralSim/Pendulum-v0", out=tmp_path / "no-reference", reference=False, **tiny)
    with pytest.raises(NeuralSimError, match="trains no agent on the real env"):
        few_shot("NeuralSim/Pendulum-v0", tmp_path / "no-reference", out=tmp_path / "x", **QUIET)
    with pytest.raises(NeuralSimError, match="algo differ"):
        few_shot("NeuralSim/Pendulum-v0", tmp_path / "reference", algo="tqc", **QUIET)
    with pytest.raises(NeuralSimError, match="run `neural-sim rl` first"):
        few_shot("NeuralSim/Pendulum-v0", tmp_path / "missing", **QUIET)


class _Interrupted(Exception):
    pass


def _interrupt_after_first_checkpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    """The run dies right after writing its first checkpoint, as a killed process would."""
    import neural_sim.rl.runs as module

    save = module._save_checkpoint

    def save_then_die(*args: object, **kwargs: object) -> None:
        save(*args, **kwargs)  # type: ignore[arg-type]
        raise _Interrupted

    monkeypatch.setattr(module, "_save_checkpoint", save_then_die)


def test_an_interrupted_run_resumes_from_its_last_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    import shutil

    settings = {"steps": 60, "seeds": (0,), "eval_every": 30, "eval_episodes": 1, "reference": False, **QUIET}
    checkpoint = tmp_path / "a" / "agents" / "neural_sim-seed0.checkpoint"
    with monkeypatch.context() as patch:
        _interrupt_after_first_checkpoint(patch)
        with pytest.raises(_Interrupted):
            zero_shot("NeuralSim/Pendulum-v0", out=tmp_path / "a", **settings)
    progress = json.loads((checkpoint / "progress.json").read_text())
    assert progress["steps"] == 30 and [e["steps"] for e in progress["evaluations"]] == [30]
    assert json.loads((tmp_path / "a" / RESULTS_FILE).read_text())["runs"]["neural_sim"] == {}
    shutil.copytree(tmp_path / "a", tmp_path / "b")

    lines: list[str] = []
    resumed = zero_shot("NeuralSim/Pendulum-v0", out=tmp_path / "a", **{**settings, "log": lines.append})
    run = resumed["runs"]["neural_sim"]["0"]
    assert "resuming from the checkpoint at 30 steps" in lines[0]
    assert [e["steps"] for e in run["evaluations"]] == [30, 60] and run["resumed_from_steps"] == [30]
    assert run["evaluations"][0] == progress["evaluations"][0]
    assert not checkpoint.exists() and (tmp_path / "a" / "agents" / "neural_sim-seed0.zip").is_file()
    # The continuation depends only on the checkpoint: resuming a copy of it gives the same run.
    again = zero_shot("NeuralSim/Pendulum-v0", out=tmp_path / "b", **settings)["runs"]["neural_sim"]["0"]
    assert again["evaluations"] == run["evaluations"]


def test_an_interrupted_few_shot_run_keeps_its_real_data_and_fine_tuned_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tiny = {"steps": 40, "eval_every": 20, "eval_episodes": 1, "seeds": (0,), **QUIET}
    zero_shot("NeuralSim/Pendulum-v0", out=tmp_path / "reference", **{**tiny, "steps": 20})
    few = {"steps": 40, "every": 20, "real_steps": 10, "finetune_iterations": 5, "seeds": (0,), **QUIET}
    with monkeypatch.context() as patch:
        _interrupt_after_first_checkpoint(patch)
        with pytest.raises(_Interrupted):
            few_shot("NeuralSim/Pendulum-v0", tmp_path / "reference", out=tmp_path / "few", **few)
    helper = tmp_path / "few" / "agents" / "few_shot-seed0.checkpoint" / "helper"
    with np.load(helper / "real_transitions.npz") as saved:
        assert saved["starts"].shape[0] == 10
    saved_weights = load_file(str(helper / "model_weights.safetensors"))  # safetensors, never pickle

    from neural_sim.rl import FewShotLoop

    taken_up: list[FewShotLoop] = []
    original = FewShotLoop._take_up

    def spy(self: FewShotLoop, *args: object) -> None:
        original(self, *args)  # type: ignore[arg-type]
        weights = self.model_envs[0].simulator.field.state_dict()
        assert all(torch.equal(weights[k], saved_weights[k]) for k in saved_weights)
        assert self.real_steps_total == 10 and self.model_envs[0].reset_states[-10:].shape == (10, 2)
        taken_up.append(self)

    monkeypatch.setattr(FewShotLoop, "_take_up", spy)
    results = few_shot("NeuralSim/Pendulum-v0", tmp_path / "reference", out=tmp_path / "few", **few)
    run = results["runs"]["few_shot"]["0"]
    assert len(taken_up) == 1 and run["resumed_from_steps"] == [20]
    assert [(e["steps"], e["real_steps"]) for e in run["evaluations"]] == [(20, 10), (40, 20)]
    assert [c["real_steps_total"] for c in run["collections"]] == [10, 20]


def test_few_shot_accepts_a_reference_still_training(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A reference-only folder as `neural-sim rl --reference-only` leaves it before its first seed ends.
    reference = tmp_path / "reference"
    with pytest.raises(NeuralSimError, match="nothing to train"):
        zero_shot("NeuralSim/Pendulum-v0", reference=False, neural_sim=False, **QUIET)
    zero_shot("NeuralSim/Pendulum-v0", neural_sim=False, steps=20, eval_every=20, eval_episodes=1, seeds=(),
              out=reference, **QUIET)
    assert json.loads((reference / RESULTS_FILE).read_text())["variants"] == ["real"]
    argv = ["few-shot", "NeuralSim/Pendulum-v0", "--reference", str(reference), "--steps", "20", "--every", "20",
            "--real-steps", "5", "--finetune-iterations", "2", "--seeds", "0", "--no-progress", "--out",
            str(tmp_path / "few")]
    assert main(argv) == 0
    assert "target: none yet" in capsys.readouterr().out
    # Once the reference's seed has finished, a rerun scores against it without retraining.
    assert main(["rl", "NeuralSim/Pendulum-v0", "--reference-only", "--steps", "20", "--eval-every", "20",
                 "--eval-episodes", "1", "--seeds", "0", "--no-progress", "--out", str(reference)]) == 0
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "few_shot seed 0: already done" in out and "target: none yet" not in out
    summary = json.loads((tmp_path / "few" / RESULTS_FILE).read_text())["summary"]
    assert summary["target_return"] is not None and summary["reference_seeds"] == [0]


def test_evaluation_callback_refuses_bad_settings() -> None:
    with pytest.raises(ValueError, match="must be positive"):
        RealEnvEvaluation("dm_control/pendulum-swingup-v0", every=0)


def test_few_shot_loop_collects_real_steps_resets_from_them_and_fine_tunes(tiny_checkpoint: Path) -> None:
    from stable_baselines3 import SAC

    from neural_sim.envs.single import NeuralSimEnv
    from neural_sim.rl import FewShotLoop

    env = gym.make("NeuralSim/Acrobot-v0", checkpoint=str(tiny_checkpoint), max_episode_steps=50)
    buffer_before = len(env.unwrapped.reset_states)
    weights_before = {k: v.clone() for k, v in env.unwrapped.simulator.field.state_dict().items()}
    loop = FewShotLoop(every=20, real_steps=30, finetune_iterations=30, learning_rate=1e-3, seed=0)
    SAC("MultiInputPolicy", env, learning_starts=10, seed=0).learn(60, callback=loop)

    assert [r["steps"] for r in loop.records] == [20, 40, 60]
    assert [r["real_steps_total"] for r in loop.records] == [30, 60, 90]
    assert all(r["loss_after"] < r["loss_before"] for r in loop.records)
    assert len(env.unwrapped.reset_states) == buffer_before + 90
    weights_after = env.unwrapped.simulator.field.state_dict()
    assert any(not torch.equal(weights_before[k], weights_after[k]) for k in weights_after)
    # The recorded transitions are real MuJoCo steps.
    oracle = NeuralSimEnv("acrobot", backend="physics")
    starts, actions, targets = (np.concatenate(loop.transitions[k]) for k in ("starts", "actions", "targets"))
    for i in (0, 45, 89):
        oracle.reset(options={"state": starts[i]})
        np.testing.assert_array_equal(oracle.step(actions[i])[4]["state"], targets[i])


def test_fine_tuning_changes_what_the_env_steps_with(tiny_checkpoint: Path) -> None:
    from neural_sim.pipeline.train import fine_tune

    simulator = neural_sim_load(tiny_checkpoint)
    rng = np.random.default_rng(0)
    starts = rng.normal(size=(64, 4)) * 0.3
    actions = rng.uniform(-1, 1, size=(64, 1))
    targets = starts + 0.01
    x, u = torch.as_tensor(starts[:2], dtype=torch.float32), torch.as_tensor(actions[:2], dtype=torch.float32)
    before = simulator.fast_predict(x, u).clone()
    losses = fine_tune(simulator, starts, actions, targets, iterations=50, learning_rate=1e-3)
    assert losses["loss_after"] < losses["loss_before"]
    after = simulator.fast_predict(x, u)
    assert not torch.equal(before, after)
    torch.testing.assert_close(after, simulator.predict(x, u), rtol=1e-5, atol=1e-6)
    with pytest.raises(NeuralSimError, match="needs transitions"):
        fine_tune(simulator, starts[:0], actions[:0], targets[:0], iterations=5)


def test_rl_command_shows_progress_by_default_on_a_plain_install(tmp_path: Path) -> None:
    # SB3's progress bar needs rich, which SB3 itself does not require; the default must not crash.
    argv = ["rl", "NeuralSim/Pendulum-v0", "--steps", "20", "--seeds", "0", "--eval-every", "20",
            "--eval-episodes", "1", "--no-reference", "--out", str(tmp_path)]
    assert main(argv) == 0
    assert (tmp_path / "agents" / "neural_sim-seed0.zip").is_file()
