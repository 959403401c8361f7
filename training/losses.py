"""Preference-optimisation losses as pure functions of sequence log-probabilities.

Every function takes per-sequence log-probabilities, i.e. ``log pi(y | x)`` summed over the
completion tokens (prompt and padding excluded), as 1-D float tensors of shape ``(B,)``, and
returns a :class:`LossOutput` with *per-example* losses. The caller reduces (``.mean()``), logs and
adds any extra term (ORPO's NLL). Nothing here touches a model, a tokenizer or Django.

The conventions follow Hugging Face TRL 1.16.0 line for line (``trl/trainer/dpo_trainer.py``
``_compute_loss``, ``trl/trainer/kto_trainer.py`` ``_compute_loss``,
``trl/experimental/cpo/cpo_trainer.py`` ``cpo_loss`` and ``trl/experimental/orpo/orpo_trainer.py``
``odds_ratio_loss``); ``tests/training/test_losses.py`` checks every loss type against TRL's
own code.
Where TRL differs from other stacks (see the convention table in the training anchors):

- DPO works on *summed* log-probs; IPO and ``sigmoid_norm`` divide the log-ratios by the
  completion length (so they need ``chosen_lengths``/``rejected_lengths``).
- ``label_smoothing`` is only used by ``robust`` and ``exo_pair`` (TRL 1.16 dropped cDPO
  smoothing from ``sigmoid``). TRL ignores it silently for the other types; we raise instead,
  because a silently ignored knob is how people end up training a different loss than they think.
- SimPO and ORPO use *length-averaged* log-probs and no reference model.

Notation used in the docstrings: ``u_c = logp_pi(y_c) - logp_ref(y_c)``, ``u_r`` likewise for the
rejected completion, ``h = u_c - u_r``, ``sigma`` the logistic function.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

DPO_LOSS_TYPES = (
    "sigmoid",
    "hinge",
    "ipo",
    "robust",
    "bco_pair",
    "sppo_hard",
    "nca_pair",
    "apo_zero",
    "apo_down",
    "exo_pair",
    "sigmoid_norm",
)
_SMOOTHED_LOSS_TYPES = ("robust", "exo_pair")
_LENGTH_NORMALISED_LOSS_TYPES = ("ipo", "sigmoid_norm")


@dataclass
class LossOutput:
    """Per-example losses plus the implicit rewards used for logging.

    Attributes:
        losses: per-example loss, shape ``(B,)``, not reduced.
        chosen_rewards: detached rewards of the chosen completions, ``(B,)``; for KTO the rewards
            of the desirable rows, ``(n_desirable,)``.
        rejected_rewards: detached rewards of the rejected completions, ``(B,)``; for KTO the
            rewards of the undesirable rows, ``(n_undesirable,)``.
        kl: KTO only: the detached reference point ``z0`` (a 0-d tensor); ``None`` elsewhere.
    """

    losses: torch.Tensor
    chosen_rewards: torch.Tensor
    rejected_rewards: torch.Tensor
    kl: torch.Tensor | None = None


def dpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    *,
    beta: float = 0.1,
    loss_type: str = "sigmoid",
    label_smoothing: float = 0.0,
    chosen_lengths: torch.Tensor | None = None,
    rejected_lengths: torch.Tensor | None = None,
) -> LossOutput:
    """DPO and its paired variants, exactly as TRL 1.16 ``DPOTrainer._compute_loss`` computes them.

    - ``sigmoid``: DPO, Rafailov et al. 2023, arXiv:2305.18290, Eq. 7: ``-log sigma(beta*h)``.
      "The DPO loss increases the likelihood of the preferred completions and decreases the
      likelihood of dispreferred completions", weighted by how wrong the implicit reward is.
      Typical ``beta`` 0.1-0.5.
    - ``hinge``: SLiC-HF (Zhao et al. 2023, arXiv:2305.10425) / RSO (Liu et al. 2023,
      arXiv:2309.06657) hinge loss on the normalised likelihood: ``relu(1 - beta*h)``.
    - ``ipo``: IPO, Azar et al. 2023, arXiv:2310.12036, Eq. 17 with ``beta`` as tau:
      ``(u_c/L_c - u_r/L_r - 1/(2*beta))**2``; the log-ratios are divided by the completion
      lengths (TRL: confirmed with the IPO authors), so the lengths are required.
    - ``robust``: rDPO, Chowdhury et al. 2024, arXiv:2403.00409 (unbiased loss under label flips
      with rate ``eps = label_smoothing`` in [0, 0.5)):
      ``[-(1-eps) log sigma(beta*h) + eps log sigma(-beta*h)] / (1 - 2*eps)``.
    - ``bco_pair``: BCO, Jung et al. 2024, arXiv:2404.04656, paired form without the running-mean
      baseline: ``-log sigma(beta*u_c) - log sigma(-beta*u_r)``.
    - ``sppo_hard``: SPPO, Wu et al. 2024, arXiv:2405.00675, Eq. 4.7 with hard probabilities:
      ``(u_c - 1/(2*beta))**2 + (u_r + 1/(2*beta))**2``.
    - ``nca_pair``: NCA, Chen et al. 2024, arXiv:2402.05369:
      ``-log sigma(beta*u_c) - 0.5 log sigma(-beta*u_c) - 0.5 log sigma(-beta*u_r)``.
    - ``apo_zero`` / ``apo_down``: APO, D'Oosterlinck et al. 2024, arXiv:2408.06266, Eqs. 7 and 8:
      ``(1 - sigma(beta*u_c)) + sigma(beta*u_r)`` and ``sigma(beta*u_c) + (1 - sigma(beta*h))``.
    - ``exo_pair``: EXO, Ji et al. 2024, arXiv:2402.00856, Eq. 16 (needs ``label_smoothing > 0``,
      1e-3 recommended): ``KL([sigma(beta*h), sigma(-beta*h)] || [1-eps, eps])``.
    - ``sigmoid_norm``: DPO on length-averaged log-ratios: ``-log sigma(beta*(u_c/L_c - u_r/L_r))``.

    Args:
        policy_chosen_logps: summed log-probs of the chosen completions under the policy, ``(B,)``.
        policy_rejected_logps: the same for the rejected completions, ``(B,)``.
        ref_chosen_logps: summed log-probs of the chosen completions under the reference, ``(B,)``.
        ref_rejected_logps: the same for the rejected completions, ``(B,)``.
        beta: inverse temperature (IPO: the regulariser tau).
        loss_type: one of :data:`DPO_LOSS_TYPES`.
        label_smoothing: label-noise rate, only for ``robust`` and ``exo_pair``.
        chosen_lengths: number of completion tokens of each chosen completion, ``(B,)``;
            required for ``ipo`` and ``sigmoid_norm`` (clamped to >= 1 as in TRL).
        rejected_lengths: the same for the rejected completions, ``(B,)``.

    Returns:
        :class:`LossOutput`: ``losses`` ``(B,)``; rewards ``beta * u_c``, ``beta * u_r`` ``(B,)``.

    Raises:
        ValueError: unknown ``loss_type``, missing lengths, or a ``label_smoothing`` the loss
            does not use / does not allow.
    """
    _check_dpo_args(loss_type, label_smoothing, chosen_lengths, rejected_lengths)
    chosen_logratios = policy_chosen_logps - ref_chosen_logps  # u_c (B,)
    rejected_logratios = policy_rejected_logps - ref_rejected_logps  # u_r (B,)
    h = chosen_logratios - rejected_logratios  # (B,)
    eps = label_smoothing

    if loss_type == "sigmoid":
        losses = -F.logsigmoid(beta * h)
    elif loss_type == "hinge":
        losses = torch.relu(1 - beta * h)
    elif loss_type in _LENGTH_NORMALISED_LOSS_TYPES:
        chosen_avg = chosen_logratios / chosen_lengths.clamp(min=1).to(h.dtype)
        rejected_avg = rejected_logratios / rejected_lengths.clamp(min=1).to(h.dtype)
        if loss_type == "ipo":
            losses = (chosen_avg - rejected_avg - 1 / (2 * beta)) ** 2
        else:
            losses = -F.logsigmoid(beta * (chosen_avg - rejected_avg))
    elif loss_type == "robust":
        losses = (-(1 - eps) * F.logsigmoid(beta * h) + eps * F.logsigmoid(-beta * h)) / (
            1 - 2 * eps
        )
    elif loss_type == "bco_pair":
        losses = -F.logsigmoid(beta * chosen_logratios) - F.logsigmoid(-beta * rejected_logratios)
    elif loss_type == "sppo_hard":
        losses = (chosen_logratios - 0.5 / beta) ** 2 + (rejected_logratios + 0.5 / beta) ** 2
    elif loss_type == "nca_pair":
        losses = (
            -F.logsigmoid(beta * chosen_logratios)
            - 0.5 * F.logsigmoid(-beta * chosen_logratios)
            - 0.5 * F.logsigmoid(-beta * rejected_logratios)
        )
    elif loss_type == "apo_zero":
        losses = (1 - torch.sigmoid(beta * chosen_logratios)) + torch.sigmoid(
            beta * rejected_logratios
        )
    elif loss_type == "apo_down":
        losses = torch.sigmoid(beta * chosen_logratios) + (1 - torch.sigmoid(beta * h))
    else:  # exo_pair
        z = beta * h
        losses = torch.sigmoid(z) * (F.logsigmoid(z) - math.log1p(-eps)) + torch.sigmoid(-z) * (
            F.logsigmoid(-z) - math.log(eps)
        )

    return LossOutput(
        losses=losses,
        chosen_rewards=(beta * chosen_logratios).detach(),
        rejected_rewards=(beta * rejected_logratios).detach(),
    )


def _check_dpo_args(
    loss_type: str,
    label_smoothing: float,
    chosen_lengths: torch.Tensor | None,
    rejected_lengths: torch.Tensor | None,
) -> None:
    if loss_type not in DPO_LOSS_TYPES:
        raise ValueError(f"unknown DPO loss_type {loss_type!r}; expected one of {DPO_LOSS_TYPES}")
    if loss_type in _LENGTH_NORMALISED_LOSS_TYPES and (
        chosen_lengths is None or rejected_lengths is None
    ):
        raise ValueError(
            f"loss_type={loss_type!r} divides the log-ratios by the completion lengths (TRL 1.16); "
            "pass chosen_lengths and rejected_lengths (number of completion tokens, shape (B,))"
        )
    if loss_type == "robust" and not 0.0 <= label_smoothing < 0.5:
        raise ValueError(f"robust DPO needs label_smoothing in [0, 0.5), got {label_smoothing}")
    if loss_type == "exo_pair" and not 0.0 < label_smoothing < 1.0:
        raise ValueError(
            f"exo_pair needs label_smoothing in (0, 1) (1e-3 is usual), got {label_smoothing}"
        )
    if loss_type not in _SMOOTHED_LOSS_TYPES and label_smoothing != 0.0:
        raise ValueError(
            f"label_smoothing={label_smoothing} has no effect on loss_type={loss_type!r} "
            "in TRL 1.16 "
            "(cDPO smoothing was removed); use loss_type='robust' for noisy labels"
        )


def kto_loss(
    policy_logps: torch.Tensor,
    ref_logps: torch.Tensor,
    kl_policy_logps: torch.Tensor,
    kl_ref_logps: torch.Tensor,
    desirable: torch.Tensor,
    *,
    beta: float = 0.1,
    desirable_weight: float = 1.0,
    undesirable_weight: float = 1.0,
) -> LossOutput:
    """KTO, Ethayarajh et al. 2024, arXiv:2402.01306, Eq. 7, as TRL 1.16 ``KTOTrainer`` computes it.

    With ``u = logp_pi(y|x) - logp_ref(y|x)`` and the reference point
    ``z0 = max(0, mean_j[logp_pi(y'_j|x_j) - logp_ref(y'_j|x_j)])`` estimated on *mismatched*
    pairs ``(x_j, y'_j)`` (TRL: completions rotated by one inside the micro-batch), detached:

    - desirable rows: ``desirable_weight * (1 - sigma(beta * (u - z0)))``
    - undesirable rows: ``undesirable_weight * (1 - sigma(beta * (z0 - u)))``

    TRL averages ``cat([desirable losses, undesirable losses])``; averaging our ``losses`` gives
    the same number. The paper's Eq. 8 suggests
    ``desirable_weight * n_D / (undesirable_weight * n_U)``
    in [1, 4/3].

    Args:
        policy_logps: summed completion log-probs under the policy, ``(B,)``.
        ref_logps: the same under the reference, ``(B,)``.
        kl_policy_logps: policy log-probs of the mismatched pairs, ``(M,)`` (no gradient is used).
        kl_ref_logps: reference log-probs of the mismatched pairs, ``(M,)``.
        desirable: ``(B,)`` bool, True for thumbs-up rows.
        beta: inverse temperature.
        desirable_weight: weight of desirable rows (lambda_D).
        undesirable_weight: weight of undesirable rows (lambda_U).

    Returns:
        :class:`LossOutput`: ``losses`` ``(B,)`` in input order; ``chosen_rewards`` =
        ``beta * u`` of the desirable rows, ``rejected_rewards`` = that of the undesirable rows
        (both in input order); ``kl`` = ``z0``.
    """
    desirable = desirable.to(device=policy_logps.device, dtype=torch.bool)
    z0 = (kl_policy_logps - kl_ref_logps).mean().clamp(min=0).detach()  # ()
    logratios = policy_logps - ref_logps  # u (B,)
    desirable_losses = desirable_weight * (1 - torch.sigmoid(beta * (logratios - z0)))
    undesirable_losses = undesirable_weight * (1 - torch.sigmoid(beta * (z0 - logratios)))
    losses = torch.where(desirable, desirable_losses, undesirable_losses)  # (B,)
    rewards = (beta * logratios).detach()
    return LossOutput(
        losses=losses,
        chosen_rewards=rewards[desirable],
        rejected_rewards=rewards[~desirable],
        kl=z0,
    )


def simpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    chosen_lengths: torch.Tensor,
    rejected_lengths: torch.Tensor,
    *,
    beta: float = 2.0,
    gamma: float = 0.5,
    label_smoothing: float = 0.0,
) -> LossOutput:
    """SimPO, Meng et al. 2024, arXiv:2405.14734, Eq. 6; reference-free.

    With length-averaged log-probs ``a = logp_pi(y|x) / |y|`` and ``d = a_c - a_r - gamma/beta``
    (TRL ``CPOTrainer.cpo_loss`` with ``loss_type="simpo"``):
    ``(1 - eps) * -log sigma(beta * d) + eps * -log sigma(-beta * d)``, which at ``eps = 0`` is the
    paper's ``-log sigma(beta * (a_c - a_r) - gamma)``. Paper ranges: beta 2-2.5 (up to 10),
    gamma/beta about 0.5. TRL's SimPO recipe adds no NLL term (``cpo_alpha=0``).

    Args:
        policy_chosen_logps: summed completion log-probs of the chosen completions, ``(B,)``.
        policy_rejected_logps: the same for the rejected completions, ``(B,)``.
        chosen_lengths: completion token counts of the chosen completions, ``(B,)`` (clamped >= 1).
        rejected_lengths: the same for the rejected completions, ``(B,)``.
        beta: reward scale.
        gamma: target reward margin.
        label_smoothing: conservative-label rate eps, as in TRL's CPO trainer.

    Returns:
        :class:`LossOutput` with ``losses`` ``(B,)`` and rewards ``beta * a_c``, ``beta * a_r``.
    """
    chosen_avg = policy_chosen_logps / chosen_lengths.clamp(min=1).to(policy_chosen_logps.dtype)
    rejected_avg = policy_rejected_logps / rejected_lengths.clamp(min=1).to(
        policy_rejected_logps.dtype
    )
    d = chosen_avg - rejected_avg - gamma / beta  # (B,)
    losses = -(1 - label_smoothing) * F.logsigmoid(beta * d) - label_smoothing * F.logsigmoid(
        -beta * d
    )
    return LossOutput(
        losses=losses,
        chosen_rewards=(beta * chosen_avg).detach(),
        rejected_rewards=(beta * rejected_avg).detach(),
    )


def orpo_odds_ratio_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    chosen_lengths: torch.Tensor,
    rejected_lengths: torch.Tensor,
    *,
    beta: float = 0.1,
) -> LossOutput:
    """ORPO's odds-ratio term, Hong et al. 2024, arXiv:2403.07691, Eqs. 4 and 7 (``beta``: lambda).

    With length-averaged log-probs ``a = logp(y|x) / |y|`` and ``odds(y) = p / (1 - p)``,
    ``log_odds = (a_c - a_r) - (log(1 - e^{a_c}) - log(1 - e^{a_r}))`` and the per-example loss is
    ``-beta * log sigma(log_odds)``. The caller adds the NLL of the chosen completions (Eq. 6);
    TRL's ``ORPOTrainer`` returns ``beta * log sigma(log_odds)`` and subtracts its mean: the same
    number. Half-precision inputs are promoted to float32 as in TRL; ``log(1 - e^a)`` uses the
    stable ``log1mexp`` branch at ``-ln 2``.

    Args:
        policy_chosen_logps: summed completion log-probs of the chosen completions, ``(B,)``.
        policy_rejected_logps: the same for the rejected completions, ``(B,)``.
        chosen_lengths: completion token counts of the chosen completions, ``(B,)`` (clamped >= 1).
        rejected_lengths: the same for the rejected completions, ``(B,)``.
        beta: weight lambda of the odds-ratio term (TRL's ``beta``, the ORPO repo's ``alpha``).

    Returns:
        :class:`LossOutput` with ``losses`` ``(B,)`` and rewards ``beta * a_c``, ``beta * a_r``.
    """
    dtype = torch.promote_types(policy_chosen_logps.dtype, torch.float32)
    chosen_avg = policy_chosen_logps.to(dtype) / chosen_lengths.clamp(min=1).to(dtype)
    rejected_avg = policy_rejected_logps.to(dtype) / rejected_lengths.clamp(min=1).to(dtype)
    log_odds = (chosen_avg - rejected_avg) - (_log1mexp(chosen_avg) - _log1mexp(rejected_avg))
    losses = -beta * F.logsigmoid(log_odds)  # (B,)
    return LossOutput(
        losses=losses,
        chosen_rewards=(beta * chosen_avg).detach(),
        rejected_rewards=(beta * rejected_avg).detach(),
    )


def _log1mexp(x: torch.Tensor) -> torch.Tensor:
    """``log(1 - exp(x))`` for ``x < 0`` without cancellation (Maechler 2012), as in TRL."""
    return torch.where(x < -math.log(2), torch.log1p(-torch.exp(x)), torch.log(-torch.expm1(x)))
