"""The pure-torch model: shapes, structure, integration accuracy and input checking."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from neural_sim.errors import InputError
from neural_sim.model import (
    IntegratorConfig,
    ModelConfig,
    MoSimField,
    NetworkConfig,
    Simulator,
    SimulatorConfig,
    StateLayout,
    VectorField,
)
from neural_sim.model.config import default_normalisation
from neural_sim.model.integrators import integrate_step

LAYOUT = StateLayout(nq=3, nv=3, nu=2, dt=0.01, action_low=(-1.0, -2.0), action_high=(1.0, 2.0), angle_qpos=(0,),
                     invariant_qpos=(2,))
SMALL = NetworkConfig(1, 16)


def make_simulator(architecture: str = "mosim", integrator: IntegratorConfig | None = None,
                   correctors: int = 2) -> Simulator:
    torch.manual_seed(0)
    model = ModelConfig(architecture=architecture, position_encoder=SMALL, state_encoder=SMALL,
                        action_encoder=SMALL, correctors=(SMALL,) * correctors, residual=SMALL)
    config = SimulatorConfig(LAYOUT, model, integrator or IntegratorConfig(), default_normalisation(LAYOUT))
    return Simulator(config)


@pytest.mark.parametrize("architecture", ["mosim", "residual"])
def test_step_and_rollout_shapes_are_batched(architecture: str) -> None:
    sim = make_simulator(architecture)
    states, actions = np.zeros((5, 6)), np.zeros((5, 7, 2))
    assert sim.step(states, actions[:, 0]).shape == (5, 6)
    assert sim.rollout(states, actions).shape == (5, 7, 6)
    assert sim.step(states[0], actions[0, 0]).shape == (6,)
    assert sim.rollout(states[0], actions[0]).shape == (7, 6)


def test_rollout_equals_repeated_steps() -> None:
    sim = make_simulator()
    rng = np.random.default_rng(0)
    state, actions = rng.normal(size=(3, 6)), rng.uniform(-1, 1, size=(3, 4, 2))
    rolled = sim.rollout(state, actions)
    current = state
    for t in range(4):
        current = sim.step(current, actions[:, t])
        np.testing.assert_allclose(rolled[:, t], current, rtol=1e-5, atol=1e-6)


def test_numpy_in_gives_numpy_out_with_same_dtype_and_torch_gives_torch() -> None:
    sim = make_simulator()
    out = sim.step(np.zeros((2, 6), dtype=np.float64), np.zeros((2, 2)))
    assert isinstance(out, np.ndarray) and out.dtype == np.float64
    out32 = sim.step(np.zeros((2, 6), dtype=np.float32), np.zeros((2, 2)))
    assert out32.dtype == np.float32
    tout = sim.step(torch.zeros(2, 6, dtype=torch.float64), torch.zeros(2, 2))
    assert isinstance(tout, torch.Tensor) and tout.dtype == torch.float64


def test_gradients_flow_when_inputs_require_grad() -> None:
    sim = make_simulator()
    actions = torch.zeros(2, 3, 2, requires_grad=True)
    sim.rollout(torch.ones(2, 6), actions).sum().backward()
    assert actions.grad is not None and actions.grad.abs().sum() > 0


def test_inverse_mass_matrix_is_symmetric_positive_definite_for_random_weights() -> None:
    field = make_simulator().field.double()
    assert isinstance(field, MoSimField)
    with torch.no_grad():
        for p in field.position_encoder.parameters():
            p.normal_(0, 0.3)  # far from initialisation, many diagonal pre-activations negative
    q = torch.randn(512, 3, dtype=torch.float64) * 5
    factor = field.cholesky_factor(q)
    assert torch.equal(factor, torch.tril(factor))
    assert (torch.diagonal(factor, dim1=-2, dim2=-1) >= 1e-3).all()
    matrix = field.inverse_mass_matrix(q)
    torch.testing.assert_close(matrix, matrix.transpose(-1, -2))
    assert (torch.linalg.eigvalsh(matrix) > 0).all()


def test_mosim_acceleration_uses_the_inverse_mass_matrix_times_forces() -> None:
    sim = make_simulator(correctors=0)
    field = sim.field
    assert isinstance(field, MoSimField)
    q, v, u = torch.randn(4, 3), torch.randn(4, 3), torch.rand(4, 2) * 2 - 1
    context = field.encode_action(u)
    qf, vf = field.features.positions(q), field.features.velocities(v)
    force = field.state_encoder(torch.cat([qf, vf], -1)) + field.action_encoder(field.features.actions(u))
    expected = (field.inverse_mass_matrix(q) @ force.unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(field.acceleration(q, v, context), expected, rtol=1e-5, atol=1e-6)


def test_invariant_coordinates_do_not_change_the_prediction_of_velocities() -> None:
    sim = make_simulator()
    state = torch.randn(1, 6)
    shifted = state.clone()
    shifted[0, 2] += 100.0  # index 2 is translation invariant
    action = torch.zeros(1, 2)
    a, b = sim.step(state, action), sim.step(shifted, action)
    torch.testing.assert_close(a[:, 3:], b[:, 3:])
    torch.testing.assert_close(b[:, 2] - a[:, 2], torch.tensor([100.0]), atol=1e-3, rtol=0)


class HarmonicOscillator(VectorField):
    """d^2q/dt^2 = -omega^2 q, whose solution is known in closed form."""

    def __init__(self, omega: float) -> None:
        layout = StateLayout(1, 1, 1, 0.1, (-1.0,), (1.0,))
        super().__init__(layout, default_normalisation(layout))
        self.omega = omega

    def acceleration(self, q: torch.Tensor, v: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        return -(self.omega**2) * q


@pytest.mark.parametrize(
    ("integrator", "tolerance"),
    [(IntegratorConfig("rk4", 1), 1e-5), (IntegratorConfig("rk4", 4), 1e-7),
     (IntegratorConfig("dopri5", rtol=1e-9, atol=1e-11), 1e-8)],
)
def test_integrator_matches_the_closed_form_solution(integrator: IntegratorConfig, tolerance: float) -> None:
    omega, dt = 2.0, 0.1
    field = HarmonicOscillator(omega).double()
    state = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    context = torch.zeros(1, 1, dtype=torch.float64)
    result = integrate_step(lambda y: field(y, context), state, dt, integrator)
    expected = torch.tensor([[math.cos(omega * dt), -omega * math.sin(omega * dt)]], dtype=torch.float64)
    assert (result - expected).abs().max() < tolerance


def test_more_rk4_substeps_reduce_the_integration_error() -> None:
    field = HarmonicOscillator(5.0).double()
    state = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    context = torch.zeros(1, 1, dtype=torch.float64)
    exact = torch.tensor([[math.cos(2.5), -5 * math.sin(2.5)]], dtype=torch.float64)
    errors = [
        float((integrate_step(lambda y: field(y, context), state, 0.5, IntegratorConfig("rk4", n)) - exact).abs().max())
        for n in (1, 2, 4)
    ]
    assert errors[0] > errors[1] > errors[2]


@pytest.mark.parametrize(
    ("states", "actions", "message"),
    [
        (np.zeros((2, 5)), np.zeros((2, 2)), "states must have shape"),
        (np.zeros((2, 6)), np.zeros((2, 3)), "actions must have shape"),
        (np.zeros((2, 6)), np.zeros((3, 2)), "batch sizes differ"),
        (np.full((2, 6), np.nan), np.zeros((2, 2)), "states contain NaN"),
        (np.zeros((2, 6)), np.array([[0.0, np.inf], [0, 0]]), "actions contain NaN"),
        (np.zeros((2, 6)), np.array([[0.0, 2.5], [0, 0]]), "outside the action bounds"),
        (np.array([["a"] * 6]), np.zeros((1, 2)), "real numbers"),
    ],
)
def test_bad_inputs_raise_clear_errors(states: np.ndarray, actions: np.ndarray, message: str) -> None:
    with pytest.raises(InputError, match=message):
        make_simulator().step(states, actions)


def test_rollout_needs_a_time_axis_in_actions() -> None:
    with pytest.raises(InputError, match=r"\[B, H, nu\]"):
        make_simulator().rollout(np.zeros((2, 6)), np.zeros((2, 2)))


def test_unknown_integrator_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown integrator 'leapfrog'"):
        make_simulator(integrator=IntegratorConfig(method="leapfrog"))  # type: ignore[arg-type]


class ConstantAcceleration(VectorField):
    """a = 3 everywhere."""

    def __init__(self, velocity_lag: float) -> None:
        layout = StateLayout(1, 1, 1, 0.02, (-1.0,), (1.0,), velocity_lag=velocity_lag)
        super().__init__(layout, default_normalisation(layout))

    def acceleration(self, q: torch.Tensor, v: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        return torch.full_like(v, 3.0)


def test_velocity_lag_reproduces_semi_implicit_euler_positions() -> None:
    h, a = 0.02, 3.0
    state = torch.tensor([[0.5, -1.0]], dtype=torch.float64)
    context = torch.zeros(1, 1, dtype=torch.float64)
    euler = torch.tensor([[0.5 + h * (-1.0 + h * a), -1.0 + h * a]], dtype=torch.float64)  # q' = q + h v'
    lagged = ConstantAcceleration(velocity_lag=h / 2).double()
    plain = ConstantAcceleration(velocity_lag=0.0).double()
    step = IntegratorConfig("rk4", 1)
    torch.testing.assert_close(integrate_step(lambda y: lagged(y, context), state, h, step), euler)
    assert (integrate_step(lambda y: plain(y, context), state, h, step) - euler).abs().max() > 1e-4


def test_euler_method_takes_mujocos_semi_implicit_update_per_substep() -> None:
    h, a = 0.01, 3.0
    layout = StateLayout(1, 1, 1, 2 * h, (-1.0,), (1.0,), velocity_lag=h / 2)  # the lag is not used
    field = ConstantAcceleration(velocity_lag=h / 2)
    config = SimulatorConfig(layout, ModelConfig(architecture="residual", residual=SMALL),
                             IntegratorConfig("euler", 2), default_normalisation(layout))
    sim = Simulator(config, field)
    q, v = 0.5, -1.0
    for _ in range(2):  # v' = v + h a, then q' = q + h v'
        v = v + h * a
        q = q + h * v
    expected = torch.tensor([[q, v]])
    with torch.no_grad():
        torch.testing.assert_close(sim.predict(torch.tensor([[0.5, -1.0]]), torch.zeros(1, 1)), expected)
        torch.testing.assert_close(sim.fast_predict(torch.tensor([[0.5, -1.0]]), torch.zeros(1, 1)), expected)


@pytest.mark.parametrize("architecture", ["mosim", "residual"])
def test_euler_fast_path_matches_its_autograd_path_and_trains(architecture: str) -> None:
    sim = make_simulator(architecture, IntegratorConfig("euler", 3))
    states, actions = torch.randn(5, 6), torch.rand(5, 2) * 2 - 1
    with torch.no_grad():
        expected = sim.predict(states, actions)
    torch.testing.assert_close(sim.fast_predict(states, actions), expected, rtol=1e-6, atol=1e-6)
    loss = sim.predict(states, actions).square().sum()
    loss.backward()
    assert all(p.grad is not None for p in sim.field.parameters() if p.requires_grad)


def test_integrate_step_refuses_the_euler_method_it_does_not_run() -> None:
    field = HarmonicOscillator(1.0)
    with pytest.raises(InputError, match="SemiImplicitEuler"):
        integrate_step(lambda y: field(y, torch.zeros(1, 1)), torch.ones(1, 2), 0.1, IntegratorConfig("euler"))


@pytest.mark.parametrize("substeps", [1, 3])
def test_fast_path_gives_the_same_states_as_torchdiffeq_at_any_batch_size(substeps: int) -> None:
    sim = make_simulator(integrator=IntegratorConfig("rk4", substeps))
    rng = np.random.default_rng(0)
    for batch in (1, 5, 64):  # traced once at batch 1, reused for the others
        states = torch.as_tensor(rng.normal(size=(batch, 6)), dtype=torch.float32)
        actions = torch.as_tensor(rng.uniform(-1, 1, size=(batch, 2)), dtype=torch.float32)
        with torch.no_grad():
            expected = sim.predict(states, actions)
        torch.testing.assert_close(sim.fast_predict(states, actions), expected, rtol=1e-6, atol=1e-6)


def test_fast_path_follows_weight_updates() -> None:
    sim = make_simulator()
    states, actions = torch.ones(2, 6), torch.zeros(2, 2)
    before = sim.fast_predict(states, actions)
    with torch.no_grad():
        for p in sim.field.parameters():
            p.add_(0.05)
        expected = sim.predict(states, actions)
    after = sim.fast_predict(states, actions)
    assert not torch.equal(before, after)
    torch.testing.assert_close(after, expected, rtol=1e-6, atol=1e-6)


def test_fast_path_with_dopri5_is_the_torchdiffeq_path() -> None:
    sim = make_simulator(integrator=IntegratorConfig("dopri5"))
    states, actions = torch.ones(2, 6), torch.zeros(2, 2)
    with torch.no_grad():
        torch.testing.assert_close(sim.fast_predict(states, actions), sim.predict(states, actions))


def test_fused_field_computes_the_same_accelerations_as_the_mosim_field() -> None:
    from neural_sim.model.fused import FusedMoSimField

    torch.manual_seed(1)
    wide = NetworkConfig(2, 16)
    model = ModelConfig(position_encoder=wide, state_encoder=wide, action_encoder=SMALL,
                        correctors=(NetworkConfig(3, 16), NetworkConfig(1, 8)))  # one corrector of another width
    field = MoSimField(LAYOUT, default_normalisation(LAYOUT), model)
    fused = FusedMoSimField(field)
    assert fused.grouped == [0, 1, 2] and fused.group.depth == 2
    q, v, u = torch.randn(9, 3), torch.randn(9, 3), torch.rand(9, 2) * 2 - 1
    with torch.no_grad():
        context = field.encode_action(u)
        torch.testing.assert_close(fused.acceleration(q, v, context), field.acceleration(q, v, context),
                                   rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("angles", [(0,), ()])
def test_fused_residual_field_computes_the_same_state_derivative_as_the_residual_field(
    angles: tuple[int, ...],
) -> None:
    from neural_sim.model.config import Normalisation
    from neural_sim.model.dynamics import ResidualField
    from neural_sim.model.fused import FusedResidualField

    torch.manual_seed(2)
    # Every folded constant differs from the identity: lag, means, stds, action bounds.
    layout = StateLayout(nq=3, nv=3, nu=2, dt=0.01, action_low=(-1.0, -2.0), action_high=(3.0, 2.0),
                         angle_qpos=angles, invariant_qpos=(2,), velocity_lag=0.01)
    norm = Normalisation(q_mean=(0.3, -0.5, 2.0), q_std=(1.5, 0.2, 3.0), v_mean=(0.1, -1.0, 0.5),
                         v_std=(2.0, 4.0, 0.5), acc_std=(10.0, 3.0, 0.7))
    field = ResidualField(layout, norm, ModelConfig(architecture="residual", residual=NetworkConfig(2, 32)))
    with torch.no_grad():
        field.network.output.weight.normal_()  # not the near-zero initial output
    fused = FusedResidualField(field)
    states = torch.randn(9, 6) * 2
    actions = torch.rand(9, 2) * torch.tensor([4.0, 4.0]) - torch.tensor([1.0, 2.0])
    with torch.no_grad():
        expected = field(states, field.encode_action(actions))
        torch.testing.assert_close(fused(states, fused.encode_action(actions)), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("architecture", "foldable"), [("residual", True), ("residual", False), ("mosim", True)])
def test_a_bfloat16_fast_path_stays_near_float32_and_leaves_the_model_alone(
        architecture: str, foldable: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    sim = make_simulator(architecture)
    if not foldable:  # a field traced as it is (contact features, quaternions): its blocks are swapped in a copy
        monkeypatch.setattr(type(sim.field.features), "foldable", property(lambda self: False))
    rng = np.random.default_rng(0)
    states = torch.as_tensor(rng.normal(size=(256, 6)), dtype=torch.float32)
    actions = torch.as_tensor(rng.uniform(-1, 1, size=(256, 2)), dtype=torch.float32)
    expected = sim.fast_predict(states, actions)
    weights = {k: v.clone() for k, v in sim.field.state_dict().items()}
    sim.set_fast_precision("bfloat16")
    found = sim.fast_predict(states, actions)
    assert found.dtype == torch.float32 and not torch.equal(found, expected)
    torch.testing.assert_close(found, expected, rtol=0.02, atol=0.02)  # bfloat16 hidden layers, float32 sums
    for key, value in sim.field.state_dict().items():
        assert value.dtype == torch.float32 and torch.equal(value, weights[key])
    sim.set_fast_precision("float32")
    torch.testing.assert_close(sim.fast_predict(states, actions), expected, rtol=0, atol=0)


def test_an_unknown_or_unsupported_fast_precision_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InputError, match=r"unknown precision 'float16'; accepted: \['float32', 'bfloat16'\]"):
        make_simulator("residual").set_fast_precision("float16")
    sim = make_simulator("mosim")
    monkeypatch.setattr(type(sim.field.features), "foldable", property(lambda self: False))
    with pytest.raises(InputError, match="or a MoSim one without contact features or quaternions"):
        sim.set_fast_precision("bfloat16")
