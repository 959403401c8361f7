"""training.losses: hand-worked values, gradients, and TRL 1.16 cross-checks."""

from __future__ import annotations

import functools
import importlib.util
from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch
from torch.testing import assert_close

from training.losses import (
    DPO_LOSS_TYPES,
    dpo_loss,
    kto_loss,
    orpo_odds_ratio_loss,
    simpo_loss,
)

HAS_TRL = importlib.util.find_spec("trl") is not None


def t(*values, dtype=torch.float32):
    return torch.tensor(values, dtype=dtype)


# --------------------------------------------------------------------------- DPO, hand-worked


@pytest.fixture
def pair_inputs():
    """Two pairs with beta = 0.5.

    policy chosen [-4, -6], reference chosen [-5, -5]  -> u_c = [ 1, -1]
    policy rejected [-8, -5], reference rejected [-6, -6] -> u_r = [-2,  1]
    h = u_c - u_r = [3, -2], beta*h = [1.5, -1.0]
    chosen lengths [2, 4], rejected lengths [4, 2] (for the length-normalised types)
    """
    return dict(
        policy_chosen_logps=t(-4.0, -6.0),
        policy_rejected_logps=t(-8.0, -5.0),
        ref_chosen_logps=t(-5.0, -5.0),
        ref_rejected_logps=t(-6.0, -6.0),
        chosen_lengths=torch.tensor([2, 4]),
        rejected_lengths=torch.tensor([4, 2]),
    )


EXPECTED = {
    "sigmoid": ([0.2014133, 1.3132617], 0.0),
    "hinge": ([0.0, 2.0], 0.0),
    "ipo": ([0.0, 3.0625], 0.0),
    "robust": ([0.0139133, 1.4382617], 0.1),
    "bco_pair": ([0.7873387, 1.9481540], 0.0),
    "sppo_hard": ([1.0, 8.0], 0.0),
    "nca_pair": ([1.1177463, 1.6981540], 0.0),
    "apo_zero": ([0.6464821, 1.2449187], 0.0),
    "apo_down": ([0.8048849, 1.1085992], 0.0),
    "exo_pair": ([0.7859173, 4.4680397], 1e-3),
    "sigmoid_norm": ([0.4740770, 0.8981233], 0.0),
}


@pytest.mark.parametrize("loss_type", sorted(EXPECTED))
def test_dpo_loss_hand_worked(pair_inputs, loss_type):
    """Expected per-pair losses for pair_inputs, derived by hand (sigma = logistic, ls = log sigma):

    sigmoid:  -ls(1.5) = log(1 + e^-1.5) = 0.2014133;  -ls(-1) = log(1 + e) = 1.3132617
    hinge:    relu(1 - 1.5) = 0;  relu(1 + 1) = 2
    ipo:      u/L: chosen [1/2, -1/4], rejected [-2/4, 1/2] -> diff [1, -0.75]; target 1/(2*0.5) = 1
              (1 - 1)^2 = 0;  (-0.75 - 1)^2 = 3.0625
    robust (eps=0.1): (-0.9*ls(1.5) + 0.1*ls(-1.5)) / 0.8 = (0.1812720 - 0.1701413)/0.8 = 0.0139133
              (-0.9*ls(-1) + 0.1*ls(1)) / 0.8 = (1.1819355 - 0.0313262)/0.8 = 1.4382617
    bco_pair: beta*u_c = [0.5, -0.5], beta*u_r = [-1, 0.5]
              -ls(0.5) - ls(1) = 0.4740770 + 0.3132617 = 0.7873387
              -ls(-0.5) - ls(-0.5) = 2 * 0.9740770 = 1.9481540
    sppo_hard: (u_c - 1)^2 + (u_r + 1)^2 = 0 + 1 = 1;  4 + 4 = 8
    nca_pair: -ls(0.5) - ls(-0.5)/2 - ls(1)/2 = 0.4740770 + 0.4870385 + 0.1566308 = 1.1177463
              -ls(-0.5) - ls(0.5)/2 - ls(-0.5)/2 = 0.9740770 + 0.2370385 + 0.4870385 = 1.6981540
    apo_zero: (1 - sigma(0.5)) + sigma(-1) = 0.3775407 + 0.2689414 = 0.6464821
              (1 - sigma(-0.5)) + sigma(0.5) = 0.6224593 + 0.6224593 = 1.2449187
    apo_down: sigma(0.5) + 1 - sigma(1.5) = 0.6224593 + 0.1824255 = 0.8048849
              sigma(-0.5) + 1 - sigma(-1) = 0.3775407 + 0.7310586 = 1.1085992
    exo_pair (eps=1e-3): q = sigma(z), z = beta*h;  q (ls(z) - log(1-eps)) + (1-q)(ls(-z) - log eps)
              z=1.5: 0.8175745*(-0.2014133 + 0.0010005)
                     + 0.1824255*(-1.7014133 + 6.9077553) = 0.7859173
              z=-1:  0.2689414*(-1.3132617 + 0.0010005)
                     + 0.7310586*(-0.3132617 + 6.9077553) = 4.4680397
    sigmoid_norm: -ls(0.5 * 1) = 0.4740770;  -ls(0.5 * -0.75) = log(1 + e^0.375) = 0.8981233
    """
    expected, eps = EXPECTED[loss_type]
    out = dpo_loss(**pair_inputs, beta=0.5, loss_type=loss_type, label_smoothing=eps)
    assert_close(out.losses, t(*expected), atol=1e-5, rtol=1e-5)
    # rewards are beta * (policy - reference), detached, for every type
    assert_close(out.chosen_rewards, t(0.5, -0.5))
    assert_close(out.rejected_rewards, t(-1.0, 0.5))
    assert not out.chosen_rewards.requires_grad and out.kl is None


def test_every_dpo_loss_type_has_a_hand_worked_value():
    assert set(EXPECTED) == set(DPO_LOSS_TYPES)


def test_dpo_loss_errors(pair_inputs):
    no_lengths = {k: v for k, v in pair_inputs.items() if "lengths" not in k}
    for loss_type in ("ipo", "sigmoid_norm"):
        with pytest.raises(ValueError, match="chosen_lengths"):
            dpo_loss(**no_lengths, loss_type=loss_type)
    with pytest.raises(ValueError, match="unknown"):
        dpo_loss(**pair_inputs, loss_type="kto_pair")
    with pytest.raises(ValueError, match="robust"):
        dpo_loss(**pair_inputs, loss_type="sigmoid", label_smoothing=0.1)
    with pytest.raises(ValueError, match=r"\[0, 0.5\)"):
        dpo_loss(**pair_inputs, loss_type="robust", label_smoothing=0.5)
    with pytest.raises(ValueError, match="exo_pair"):
        dpo_loss(**pair_inputs, loss_type="exo_pair")


def test_dpo_sigmoid_at_policy_equal_reference_is_log2():
    """policy == reference: h = 0, loss = -log sigma(0) = log 2 for every pair."""
    x = torch.randn(5)
    out = dpo_loss(x, x - 1, x, x - 1)
    assert_close(out.losses, torch.full((5,), 0.6931472))


# --------------------------------------------------------------------------- KTO, SimPO, ORPO


def test_kto_loss_hand_worked():
    """beta = 1, desirable_weight = 2, undesirable_weight = 0.5.

    u = policy - ref = [-3, -5, -4, -2] - [-4] = [1, -1, 0, 2]; desirable = [T, T, F, F]
    z0 = max(0, mean([-4, -5] - [-5, -5])) = max(0, mean([1, 0])) = 0.5
    desirable:   2 * (1 - sigma(1 - 0.5)) = 2 * 0.3775407 = 0.7550813
                 2 * (1 - sigma(-1 - 0.5)) = 2 * 0.8175745 = 1.6351490
    undesirable: 0.5 * (1 - sigma(0.5 - 0)) = 0.5 * 0.3775407 = 0.1887703
                 0.5 * (1 - sigma(0.5 - 2)) = 0.5 * 0.8175745 = 0.4087872
    rewards beta*u: desirable [1, -1], undesirable [0, 2]
    """
    out = kto_loss(
        t(-3.0, -5.0, -4.0, -2.0),
        t(-4.0, -4.0, -4.0, -4.0),
        t(-4.0, -5.0),
        t(-5.0, -5.0),
        torch.tensor([True, True, False, False]),
        beta=1.0,
        desirable_weight=2.0,
        undesirable_weight=0.5,
    )
    assert_close(out.losses, t(0.7550813, 1.6351490, 0.1887703, 0.4087872))
    assert_close(out.chosen_rewards, t(1.0, -1.0))
    assert_close(out.rejected_rewards, t(0.0, 2.0))
    assert_close(out.kl, torch.tensor(0.5))


def test_kto_reference_point_is_clamped_and_detached():
    """KL estimate mean([-6] - [-5]) = -1 < 0 -> z0 = 0: the loss is 1 - sigma(beta * u)."""
    kl_policy = t(-6.0).requires_grad_()
    out = kto_loss(t(-3.0), t(-4.0), kl_policy, t(-5.0), torch.tensor([True]), beta=1.0)
    assert out.kl.item() == 0.0
    assert_close(out.losses, t(1 - torch.sigmoid(torch.tensor(1.0)).item()))
    assert not out.losses.requires_grad  # nothing flows into the KL pairs


def test_simpo_loss_hand_worked():
    """beta = 2, gamma = 0.5.

    averages: chosen [-4/2, -6/4] = [-2, -1.5], rejected [-9/3, -4/2] = [-3, -2] -> diff [1, 0.5]
    beta*diff - gamma = [1.5, 0.5]; loss = -ls(1.5) = 0.2014133, -ls(0.5) = 0.4740770
    with label_smoothing 0.1: 0.9*0.2014133 + 0.1*1.7014133 = 0.3514133;
                              0.9*0.4740770 + 0.1*0.9740770 = 0.5240770
    rewards beta*avg: chosen [-4, -3], rejected [-6, -4]
    """
    args = (t(-4.0, -6.0), t(-9.0, -4.0), torch.tensor([2, 4]), torch.tensor([3, 2]))
    out = simpo_loss(*args, beta=2.0, gamma=0.5)
    assert_close(out.losses, t(0.2014133, 0.4740770))
    assert_close(out.chosen_rewards, t(-4.0, -3.0))
    assert_close(out.rejected_rewards, t(-6.0, -4.0))
    smoothed = simpo_loss(*args, beta=2.0, gamma=0.5, label_smoothing=0.1)
    assert_close(smoothed.losses, t(0.3514133, 0.5240770))


def test_orpo_odds_ratio_hand_worked():
    """beta = 0.1; averages a_c = [-1/2, -2/2], a_r = [-3/3, -4/2] = [-1, -2].

    Since 1 - e^{-2a} = (1 - e^{-a})(1 + e^{-a}):
    log(1 - e^{-a}) - log(1 - e^{-2a}) = -log(1 + e^{-a}) = ls(a), so
    row 1 (a_c = -0.5, a_r = -1): log_odds = 0.5 - ls(0.5) = 0.5 + 0.4740770 = 0.9740770
    row 2 (a_c = -1,   a_r = -2): log_odds = 1 - ls(1)   = 1 + 0.3132617 = 1.3132617
    loss = -0.1 * ls(log_odds): 0.1*log(1 + e^-0.9740770) = 0.0320300,
                                0.1*log(1 + e^-1.3132617) = 0.0238183
    """
    out = orpo_odds_ratio_loss(
        t(-1.0, -2.0), t(-3.0, -4.0), torch.tensor([2, 2]), torch.tensor([3, 2]), beta=0.1
    )
    assert_close(out.losses, t(0.0320300, 0.0238183))
    assert_close(out.chosen_rewards, t(-0.05, -0.1))


# --------------------------------------------------------------------------- gradients

DIRECTIONAL = (
    "sigmoid",
    "hinge",
    "ipo",
    "robust",
    "bco_pair",
    "apo_zero",
    "exo_pair",
    "sigmoid_norm",
)


@pytest.mark.parametrize("loss_type", DIRECTIONAL)
def test_dpo_gradient_raises_chosen_and_lowers_rejected(loss_type):
    """At policy == reference, descending the loss raises chosen and lowers rejected log-probs."""
    pc, pr = t(-5.0, -7.0).requires_grad_(), t(-6.0, -4.0).requires_grad_()
    eps = {"robust": 0.1, "exo_pair": 1e-3}.get(loss_type, 0.0)
    out = dpo_loss(
        pc,
        pr,
        pc.detach(),
        pr.detach(),
        beta=0.1,
        loss_type=loss_type,
        label_smoothing=eps,
        chosen_lengths=torch.tensor([3, 5]),
        rejected_lengths=torch.tensor([4, 2]),
    )
    out.losses.sum().backward()
    assert (pc.grad < 0).all() and (pr.grad > 0).all()


def test_unpaired_and_reference_free_gradients_have_the_right_sign():
    lengths = torch.tensor([3, 4])
    for fn in (simpo_loss, orpo_odds_ratio_loss):
        pc, pr = t(-5.0, -7.0).requires_grad_(), t(-6.0, -4.0).requires_grad_()
        fn(pc, pr, lengths, lengths).losses.sum().backward()
        assert (pc.grad < 0).all() and (pr.grad > 0).all(), fn.__name__
    u = t(-3.0, -5.0, -4.0, -2.0).requires_grad_()
    kto_loss(
        u, t(-4.0, -4.0, -4.0, -4.0), t(-4.0), t(-4.5), torch.tensor([True, True, False, False])
    ).losses.sum().backward()
    assert (u.grad[:2] < 0).all() and (u.grad[2:] > 0).all()


@pytest.mark.parametrize("loss_type", DPO_LOSS_TYPES)
def test_dpo_gradcheck(loss_type):
    d = dict(dtype=torch.float64)
    inputs = [
        torch.tensor(v, **d).requires_grad_()
        for v in ([-4.0, -6.3], [-8.1, -5.2], [-5.2, -5.0], [-6.0, -6.4])
    ]
    eps = {"robust": 0.1, "exo_pair": 1e-3}.get(loss_type, 0.0)
    lengths = dict(chosen_lengths=torch.tensor([2, 4]), rejected_lengths=torch.tensor([4, 2]))

    def fn(*x):
        return dpo_loss(*x, beta=0.5, loss_type=loss_type, label_smoothing=eps, **lengths).losses

    assert torch.autograd.gradcheck(fn, inputs)


def test_kto_simpo_orpo_gradcheck():
    d = dict(dtype=torch.float64)
    pol, ref = torch.tensor([-3.0, -5.2, -4.1], **d), torch.tensor([-4.0, -4.3, -3.9], **d)
    kl_p, kl_r = torch.tensor([-4.0, -5.0], **d), torch.tensor([-5.0, -5.5], **d)
    label = torch.tensor([True, False, True])
    assert torch.autograd.gradcheck(
        lambda p, r: kto_loss(p, r, kl_p, kl_r, label).losses,
        (pol.requires_grad_(), ref.requires_grad_()),
    )
    c, r = (
        torch.tensor([-3.0, -5.2], **d).requires_grad_(),
        torch.tensor([-4.0, -4.3], **d).requires_grad_(),
    )
    lc, lr = torch.tensor([3, 5]), torch.tensor([4, 2])
    assert torch.autograd.gradcheck(
        lambda a, b: simpo_loss(a, b, lc, lr, label_smoothing=0.1).losses, (c, r)
    )
    assert torch.autograd.gradcheck(lambda a, b: orpo_odds_ratio_loss(a, b, lc, lr).losses, (c, r))


# --------------------------------------------------------------------------- TRL 1.16 cross-checks
# TRL 1.16 computes DPO and KTO losses inline in `_compute_loss`, so we run TRL's own method on a
# stand-in `self` and a stand-in model that returns per-token log-probs whose sums are our inputs
# (reference log-probs go in as the precomputed columns). Nothing is re-typed from TRL.


def _stub_outputs(log_probs):
    zeros = torch.zeros_like(log_probs)
    return SimpleNamespace(
        log_probs=log_probs, entropy=zeros, mean_logits=zeros, is_top1=zeros.bool()
    )


def _stub_self(**attrs):
    accelerator = SimpleNamespace(
        device=torch.device("cpu"),
        gather=lambda x: x,
        gather_for_metrics=lambda x: x,
        unwrap_model=lambda m: m,
    )
    return SimpleNamespace(
        model=SimpleNamespace(training=True),
        accelerator=accelerator,
        aux_loss_enabled=False,
        _metrics={"train": defaultdict(list)},
        _total_train_tokens=0,
        _tp_size=1,
        **attrs,
    )


def _completion(lengths, width):
    mask = torch.zeros(len(lengths), width, dtype=torch.long)
    for i, n in enumerate(lengths):
        mask[i, 1 : 1 + n] = 1  # position 0 is the prompt
    return mask


def trl_dpo(loss_type, beta, eps, pc, pr, rc, rr, lc, lr):
    """TRL's loss and rewards for each pair (one pair per call: TRL returns the batch mean)."""
    from trl import DPOTrainer

    losses, chosen_rewards, rejected_rewards = [], [], []
    for i in range(len(pc)):
        width = int(max(lc[i], lr[i])) + 2
        per_token = torch.zeros(2, width - 1)
        per_token[0, 0], per_token[1, 0] = pc[i], pr[i]  # only the sum over positions matters
        fake = _stub_self(
            ld_alpha=None,
            precompute_ref_logps=True,
            f_divergence_type="reverse_kl",
            loss_types=[loss_type],
            loss_weights=[1.0],
            beta=beta,
            label_smoothing=eps,
            use_weighting=False,
            args=SimpleNamespace(discopop_tau=0.05),
        )
        inputs = {
            "input_ids": torch.zeros(2, width, dtype=torch.long),
            "attention_mask": torch.ones(2, width, dtype=torch.long),
            "completion_mask": _completion([lc[i], lr[i]], width),
            "ref_chosen_logps": rc[i : i + 1],
            "ref_rejected_logps": rr[i : i + 1],
        }
        model = functools.partial(lambda out, **_: _stub_outputs(out), per_token)
        loss = DPOTrainer._compute_loss(fake, model, inputs, False)
        losses.append(loss.item())
        chosen_rewards.append(fake._metrics["train"]["rewards/chosen"][-1])
        rejected_rewards.append(fake._metrics["train"]["rewards/rejected"][-1])
    return t(*losses), t(*chosen_rewards), t(*rejected_rewards)


@pytest.mark.skipif(not HAS_TRL, reason="trl is not installed")
@pytest.mark.parametrize("loss_type", DPO_LOSS_TYPES)
def test_dpo_matches_trl(loss_type):
    g = torch.Generator().manual_seed(1)
    pc, pr, rc, rr = (-20 * torch.rand(6, generator=g) - 1 for _ in range(4))
    lc, lr = torch.randint(1, 12, (6,), generator=g), torch.randint(1, 12, (6,), generator=g)
    eps = {"robust": 0.2, "exo_pair": 1e-3}.get(loss_type, 0.0)
    beta = 0.3
    ours = dpo_loss(
        pc,
        pr,
        rc,
        rr,
        beta=beta,
        loss_type=loss_type,
        label_smoothing=eps,
        chosen_lengths=lc,
        rejected_lengths=lr,
    )
    trl_losses, trl_chosen, trl_rejected = trl_dpo(loss_type, beta, eps, pc, pr, rc, rr, lc, lr)
    assert_close(ours.losses, trl_losses, atol=1e-5, rtol=1e-5)
    assert_close(ours.chosen_rewards, trl_chosen, atol=1e-5, rtol=1e-5)
    assert_close(ours.rejected_rewards, trl_rejected, atol=1e-5, rtol=1e-5)


@pytest.mark.skipif(not HAS_TRL, reason="trl is not installed")
@pytest.mark.parametrize("kl_shift", [0.0, -30.0])  # z0 > 0, and z0 clamped to 0
def test_kto_matches_trl(kl_shift):
    from trl import KTOTrainer

    g = torch.Generator().manual_seed(2)
    pol, ref = -20 * torch.rand(6, generator=g) - 1, -20 * torch.rand(6, generator=g) - 1
    kl_pol, kl_ref = (
        -10 * torch.rand(6, generator=g) - 1 + kl_shift,
        -10 * torch.rand(6, generator=g) - 6,
    )
    label = torch.tensor([True, False, True, True, False, False])
    kw = dict(beta=0.2, desirable_weight=1.3, undesirable_weight=0.7)
    ours = kto_loss(pol, ref, kl_pol, kl_ref, label, **kw)

    trl_losses = []
    width = 4
    for i in range(6):  # one row per call, the full KL batch each time
        main, kl = torch.zeros(1, width - 1), torch.zeros(6, width)
        main[0, 0], kl[:, 0] = pol[i], kl_pol

        def model(input_ids, main=main, kl=kl, **_):
            return _stub_outputs(kl if input_ids.size(1) == width + 1 else main)

        fake = _stub_self(calculate_KL=True, precompute_ref_logps=True, loss_type="kto", **kw)
        fake._compute_kl_logps = functools.partial(KTOTrainer._compute_kl_logps, fake)
        inputs = {
            "input_ids": torch.zeros(1, width, dtype=torch.long),
            "attention_mask": torch.ones(1, width, dtype=torch.long),
            "completion_mask": _completion([2], width),
            "KL_input_ids": torch.zeros(6, width + 1, dtype=torch.long),
            "KL_attention_mask": torch.ones(6, width + 1, dtype=torch.long),
            "KL_completion_mask": _completion([2] * 6, width + 1),
            "label": label[i : i + 1],
            "ref_logps": ref[i : i + 1],
            "ref_KL_logps": kl_ref,
        }
        trl_losses.append(KTOTrainer._compute_loss(fake, model, inputs, False).item())
        assert_close(torch.tensor(fake._metrics["train"]["kl"][-1]), ours.kl)
    assert_close(ours.losses, t(*trl_losses), atol=1e-6, rtol=1e-5)


@pytest.mark.skipif(not HAS_TRL, reason="trl is not installed")
@pytest.mark.parametrize("label_smoothing", [0.0, 0.15])
def test_simpo_matches_trl_cpo_trainer(label_smoothing):
    from trl.experimental.cpo import CPOTrainer

    g = torch.Generator().manual_seed(3)
    pc, pr = -30 * torch.rand(6, generator=g) - 1, -30 * torch.rand(6, generator=g) - 1
    lc, lr = torch.randint(1, 20, (6,), generator=g), torch.randint(1, 20, (6,), generator=g)
    fake = SimpleNamespace(
        alpha=0.0,
        beta=2.5,
        simpo_gamma=1.2,
        label_smoothing=label_smoothing,
        loss_type="simpo",
        accelerator=SimpleNamespace(device=torch.device("cpu")),
    )
    # CPOTrainer averages the log-probs itself before cpo_loss when loss_type == "simpo"
    trl_losses, trl_chosen, trl_rejected = CPOTrainer.cpo_loss(fake, pc / lc, pr / lr)
    ours = simpo_loss(pc, pr, lc, lr, beta=2.5, gamma=1.2, label_smoothing=label_smoothing)
    assert_close(ours.losses, trl_losses)
    assert_close(ours.chosen_rewards, trl_chosen)
    assert_close(ours.rejected_rewards, trl_rejected)


@pytest.mark.skipif(not HAS_TRL, reason="trl is not installed")
def test_orpo_matches_trl_orpo_trainer():
    from trl.experimental.orpo import ORPOTrainer

    g = torch.Generator().manual_seed(4)
    lc, lr = torch.randint(1, 20, (8,), generator=g), torch.randint(1, 20, (8,), generator=g)
    # averages on both sides of the log1mexp branch point -ln 2
    pc, pr = -2 * torch.rand(8, generator=g) * lc, -2 * torch.rand(8, generator=g) * lr
    fake = SimpleNamespace(beta=0.25, accelerator=SimpleNamespace(device=torch.device("cpu")))
    trl_losses, trl_chosen, trl_rejected, _, _ = ORPOTrainer.odds_ratio_loss(fake, pc / lc, pr / lr)
    ours = orpo_odds_ratio_loss(pc, pr, lc, lr, beta=0.25)
    assert_close(ours.losses, -trl_losses)  # TRL returns beta*log sigma and subtracts it
    assert_close(ours.chosen_rewards, trl_chosen)
    assert_close(ours.rejected_rewards, trl_rejected)
