"""The metrics report and cohort tables as Rich tables, in Simplified Chinese or English."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from siyu.glossary import TERMS

LABELS: dict[str, tuple[str, str]] = {
    "customers": ("顾客 Customers", "Customers"),
    "total": ("统一顾客数", "unified customers"),
    "quarantined_identifiers": ("隔离标识", "quarantined identifiers"),
    "pool": ("顾客池", "Customer pool"),
    "start": ("期初", "at start"),
    "end": ("期末", "at end"),
    "pass_rate": ("通过率（按渠道）", "Pass rate by channel"),
    "retention": ("留存率", "Retention"),
    "cohort_size": ("新客群规模", "cohort size"),
    "d7": ("7日留存", "D7"),
    "d30": ("30日留存", "D30"),
    "d90": ("90日留存", "D90"),
    "conversion": ("转化率", "Conversion"),
    "repurchase": ("复购", "Repurchase"),
    "rate": ("比率", "rate"),
    "purchases_per_buyer": ("人均购买次数", "purchases per buyer"),
    "sales": ("销售", "Sales"),
    "gmv": ("GMV", "GMV"),
    "orders": ("订单数", "orders"),
    "net_sales": ("净销售额", "net sales"),
    "aov": ("客单价", "AOV"),
    "gmv_decomposition": ("私域GMV拆解", "GMV decomposition"),
    "users": ("用户数（期初顾客池）", "users (pool at start)"),
    "roi": ("渠道ROI", "Channel ROI"),
    "revenue": ("归因净销售额", "attributed net sales"),
    "cost": ("成本", "cost"),
    "cac": ("获客成本", "CAC"),
    "ltv": ("顾客终身价值", "LTV"),
    "mean_historic": ("历史平均LTV", "mean historic LTV"),
    "loyal": ("忠实用户", "Loyal customers"),
    "super_users": ("超级用户", "Super users"),
    "non_member_join_rate": ("非会员入会率", "Non-member join rate"),
    "numerator": ("入会", "joined"),
    "denominator": ("非会员顾客", "non-member guests"),
    "guide_assets": ("导购客群资产数", "Guide customer assets"),
    "triangle": ("私域三角", "Private-domain triangle"),
    "reach_rate": ("触达率", "reach rate"),
    "property_power": ("私域产权力", "property power"),
    "single_customer_value": ("单客价值度", "single-customer value"),
    "referral_rate": ("顾客推荐率", "referral rate"),
    "community_gmv": ("社群GMV", "Community GMV"),
    "satisfaction": ("满意度", "Satisfaction"),
    "mean": ("平均分", "mean score"),
    "share_4_5": ("4–5分占比", "share 4–5"),
    "responses": ("答卷数", "responses"),
    "lifecycle": ("生命周期", "Lifecycle"),
    "rfm_classes": ("RFM分类", "RFM classes"),
    "metric": ("指标", "metric"),
    "value": ("数值", "value"),
    "channel": ("渠道", "channel"),
    "staff": ("导购", "staff"),
    "customers_n": ("顾客数", "customers"),
    **TERMS,
}
RATES = {
    "rate", "d7", "d30", "d90", "conversion", "reach_rate", "referral_rate", "share_4_5",
}  # fmt: skip
MONEY = {
    "gmv", "net_sales", "aov", "revenue", "cost", "cac", "mean_historic", "community_gmv",
    "single_customer_value",
}  # fmt: skip


def label(key: str, lang: str) -> str:
    if key.startswith("w") and key[1:].isdigit():  # conversion window, e.g. w30
        return f"{key[1:]}日内转化" if lang == "zh" else f"within {key[1:]} days"
    zh, en = LABELS.get(key, (key, key))
    return zh if lang == "zh" else en


def fmt(key: str, value: Any) -> str:
    if value is None:
        return "—"
    if key in RATES or key.startswith("w") and key[1:].isdigit():
        return f"{value:.1%}"
    if key in MONEY:
        return f"¥{value / 100:,.2f}"
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _simple(title: str, items: dict[str, Any], lang: str) -> Table:
    t = Table(title=title, title_justify="left", show_header=False)
    t.add_column(label("metric", lang))
    t.add_column(label("value", lang), justify="right")
    for k, v in items.items():
        if isinstance(v, list):
            t.add_row(label(k, lang), ", ".join(v) or "—")
        else:
            t.add_row(label(k, lang), fmt(k, v))
    return t


def print_report(console: Console, report: dict[str, Any], lang: str = "zh") -> None:
    p = report["period"]
    head = "私域指标报告" if lang == "zh" else "Private-domain metrics"
    console.print(f"[bold]{head}[/bold]  {p['from']} → {p['to']} ({p['timezone']}, [from, to))")
    scalars: dict[str, Any] = {}
    for key, value in report.items():
        if key == "period":
            continue
        if not isinstance(value, dict):
            scalars[key] = value
        elif key in ("pass_rate", "guide_assets"):
            col = "channel" if key == "pass_rate" else "staff"
            t = Table(title=label(key, lang), title_justify="left")
            t.add_column(label(col, lang))
            t.add_column(
                label("rate" if key == "pass_rate" else "customers_n", lang), justify="right"
            )
            for k, v in value.items():
                t.add_row(k, fmt("rate", v) if key == "pass_rate" else fmt(key, v))
            console.print(t)
        elif key == "roi":
            t = Table(title=label(key, lang), title_justify="left")
            t.add_column(label("channel", lang))
            for c in ("revenue", "cost", "roi", "cac"):
                t.add_column(label(c, lang), justify="right")
            for ch, row in value.items():
                roi = "—" if row["roi"] is None else f"{row['roi']:.2f}"
                t.add_row(ch, fmt("revenue", row["revenue"]), fmt("cost", row["cost"]), roi,
                          fmt("cac", row["cac"]))  # fmt: skip
            console.print(t)
        else:
            console.print(_simple(label(key, lang), value, lang))
    console.print(_simple(label("metric", lang), scalars, lang))


def print_cohorts(console: Console, table: Any, lang: str = "zh") -> None:
    unit = {"week": ("周", "week"), "month": ("月", "month")}[table.unit][0 if lang == "zh" else 1]
    # No vertical rules: twelve offsets and the cohort still fit an 80-column terminal.
    t = Table(
        title=f"{label(table.metric, lang)} · {unit}",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    t.add_column("cohort" if lang == "en" else "新客群", no_wrap=True)
    t.add_column("size" if lang == "en" else "人数", justify="right", no_wrap=True)
    for k in range(table.periods):
        t.add_column(f"+{k}", justify="right", no_wrap=True)
    for row in table.rows:
        cells = ["" if v is None else f"{v:.0%}" for v in row["values"]]
        name = row["cohort"].strftime("%Y-%m" if table.unit == "month" else "%Y-%m-%d")
        t.add_row(name, f"{row['size']:,}", *cells)
    console.print(t)
