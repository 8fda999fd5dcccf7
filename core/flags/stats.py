"""Conversion rates with 95% intervals: Wilson's score interval for one rate, Newcombe's hybrid
score interval for a difference of two (built from the two Wilson intervals). Both behave at
small counts and at rates near 0 or 1, where the normal approximation gives nonsense."""

from __future__ import annotations

from math import sqrt

#: The standard normal quantile for a two-sided 95% interval.
Z95 = 1.959963984540054


def wilson(converted: int, exposed: int, z: float = Z95) -> tuple[float, float]:
    """The interval of ``converted / exposed``; (0, 1) when nobody was exposed."""
    if exposed <= 0:
        return 0.0, 1.0
    p = converted / exposed
    z2 = z * z
    denominator = 1 + z2 / exposed
    centre = (p + z2 / (2 * exposed)) / denominator
    half = z * sqrt(p * (1 - p) / exposed + z2 / (4 * exposed * exposed)) / denominator
    # At 0 or all converted the bound is exactly 0 or 1; floating point would leave 1e-17.
    low = 0.0 if converted <= 0 else max(0.0, centre - half)
    high = 1.0 if converted >= exposed else min(1.0, centre + half)
    return low, high


def difference_interval(
    converted: int, exposed: int, control_converted: int, control_exposed: int
) -> tuple[float, float]:
    """The interval of rate minus the control's rate (Newcombe 1998, method 10)."""
    p1 = converted / exposed if exposed else 0.0
    p2 = control_converted / control_exposed if control_exposed else 0.0
    l1, u1 = wilson(converted, exposed)
    l2, u2 = wilson(control_converted, control_exposed)
    d = p1 - p2
    low = d - sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = d + sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return max(-1.0, low), min(1.0, high)
