"""Router health (路由器运行状况) from its Prometheus metrics, as the console shows it.

Each router instance serves ``/metrics`` (``exchange router --metrics-port``);
the console reads the URLs it was given (``--router-metrics``), a few seconds
at most each, and shows the figures an operator looks at first: is routing
paused, are batches uncommitted, is the broker stalling, how far behind is
the group, how many views and grants are compiled, what was delivered. An
instance that does not answer is shown as down with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx
from prometheus_client.parser import text_string_to_metric_families

PREFIX = "gov_exchange_"
#: (metric, label shown, whether a value above 0 is a problem)
SHOWN: list[tuple[str, str, bool]] = [
    ("routing_paused", "路由暂停 routing paused", True),
    ("uncommitted_batches", "未提交批次 uncommitted batches", False),
    ("broker_stalls_total", "代理停滞 broker stalls", True),
    ("control_reset_total", "控制主题重置 control topic resets", True),
    ("consumer_lag", "消费滞后 consumer lag (records)", False),
    ("views", "已编译视图 compiled views", False),
    ("active_grants", "有效授权 active grants", False),
    ("records_in_total", "读入记录 records read", False),
    ("records_delivered_total", "已投递记录 records delivered", False),
    ("records_filtered_total", "被过滤记录 records filtered out", False),
    ("records_dead_lettered_total", "死信记录 records dead-lettered", True),
    ("policy_reloads_total", "策略重载 policy reloads", False),
]


@dataclass
class Instance:
    url: str
    up: bool
    error: str | None = None
    figures: list[tuple[str, float, bool]] = field(default_factory=list)  # label, value, alarm

    @property
    def healthy(self) -> bool:
        return self.up and not any(alarm and value > 0 for _, value, alarm in self.figures)


def parse(text: str) -> dict[str, float]:
    """Each sample's name summed over its labels (``_created`` samples left out)."""
    sums: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name.endswith("_created"):
                continue
            sums[s.name] = sums.get(s.name, 0.0) + float(s.value)
    return sums


def figures(sums: dict[str, float]) -> list[tuple[str, float, bool]]:
    return [
        (label, sums[PREFIX + name], alarm) for name, label, alarm in SHOWN if PREFIX + name in sums
    ]


async def scrape(urls: list[str], *, timeout_s: float = 3.0) -> list[Instance]:
    out = []
    async with httpx.AsyncClient(timeout=timeout_s) as client:
        for url in urls:
            try:
                answer = await client.get(url)
                answer.raise_for_status()
                out.append(Instance(url, True, figures=figures(parse(answer.text))))
            except (httpx.HTTPError, ValueError) as exc:
                out.append(Instance(url, False, error=str(exc) or type(exc).__name__))
    return out
