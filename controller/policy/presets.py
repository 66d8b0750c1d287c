"""Presets: named bundles of defaults and restrictions. The only one is ``hpa``.

``preset: hpa`` reproduces Kubernetes HPA (autoscaling/v2): HPA's proposal rules, tolerance 0.1,
and HPA's two normalization paths. Without ``behavior`` HPA takes its legacy path (one
max-window stabilization and a per-cycle scale-up cap, no scale-event history); a ``behavior``
object, even an empty one, switches to the behavior path with defaults filled in field by field.
"""

from __future__ import annotations

from controller.core.scaling.params import DEFAULT_TOLERANCE  # noqa: F401 (stated once, in the core; re-exported)
from controller.core.scaling.params import ScalingRules, hpa_default_scale_down, hpa_default_scale_up

HPA = "hpa"

# Fields HPA has no equivalent for; allowing them would make `preset: hpa` not HPA any more.
HPA_UNSUPPORTED = {
    "smoothing": "HPA does not smooth metrics",
    "onMissingMetrics": "HPA has its own missing-metrics rules",
}


def default_scale_up_rules() -> ScalingRules:
    """HPA behavior default for scaleUp, also Setpoint's own: no window; max(4 pods, 100 %) per 15 s."""
    return hpa_default_scale_up()


def default_scale_down_rules() -> ScalingRules:
    """HPA behavior default for scaleDown, also Setpoint's own: 300 s window; 100 % per 15 s."""
    return hpa_default_scale_down()


def uses_legacy_path(preset: str | None, behavior_given: bool) -> bool:
    """HPA without ``behavior`` is not HPA with default behavior (hpa-spec section 11 vs 12)."""
    return preset == HPA and not behavior_given
