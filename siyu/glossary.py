"""The domain's named categories in Simplified Chinese and English, one table for every
surface (CLI tables, console pages): lifecycle stages, value layers, RFM classes, quadrants,
ladder roles."""

from __future__ import annotations

TERMS: dict[str, tuple[str, str]] = {
    # SPEC §6 lifecycle
    "introduction": ("引入期", "introduction"),
    "growth": ("成长期", "growth"),
    "maturity": ("成熟期", "maturity"),
    "dormant": ("休眠期", "dormant"),
    "churned": ("流失期", "churned"),
    # SPEC §6 value layers
    "loyal_fans": ("铁杆粉丝", "loyal fans"),
    "paying": ("付费用户", "paying"),
    "active": ("活跃用户", "active"),
    "newly_activated": ("新激活用户", "newly activated"),
    "regular": ("普通用户", "regular"),
    # SPEC §6 RFM classes
    "important_value": ("重要价值", "important value"),
    "important_development": ("重要发展", "important development"),
    "important_retention": ("重要保持", "important retention"),
    "important_winback": ("重要挽留", "important win-back"),
    "general_value": ("一般价值", "general value"),
    "general_development": ("一般发展", "general development"),
    "general_retention": ("一般保持", "general retention"),
    "general_winback": ("一般挽留", "general win-back"),
    # SPEC §6 business quadrants
    "high_freq_high_aov": ("高频高客单", "high frequency, high AOV"),
    "high_freq_low_aov": ("高频低客单", "high frequency, low AOV"),
    "low_freq_high_aov": ("低频高客单", "low frequency, high AOV"),
    "low_freq_low_aov": ("低频低客单", "low frequency, low AOV"),
    # SPEC §6 product ladder roles
    "traffic": ("引流品", "traffic"),
    "trust": ("建信品", "trust"),
    "profit": ("利润品", "profit"),
    "extension": ("拓展品", "extension"),
}


def zh(key: str, default: str = "") -> str:
    """The Chinese name of a term, or `default` for a value the glossary does not name."""
    return TERMS[key][0] if key in TERMS else default
