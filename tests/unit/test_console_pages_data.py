"""What the console's report charts, router health page and approval preview compute."""

from __future__ import annotations

import datetime as dt

from exchange.audit.entry import Action, Decision, Draft, chain
from exchange.audit.report import Period
from exchange.avro.jsoncodec import CHINA_TZ
from exchange.catalog.model import Catalog
from exchange.console import charts, health, preview

BMC = "birth_medical_certificate"


def at(day: int, hour: int = 10) -> dt.datetime:
    return dt.datetime(2026, 11, day, hour, tzinfo=CHINA_TZ)


def test_the_report_charts_count_per_day_in_beijing_time() -> None:
    drafts = [
        Draft(
            Action.RECORDS_DELIVERED,
            "router",
            Decision.DELIVERED,
            consumer="police",
            details={"record_count": "5"},
            at=at(2),
        ),
        # 23:30 UTC on the 2nd is the 3rd in Beijing
        Draft(
            Action.RECORDS_DELIVERED,
            "router",
            Decision.DELIVERED,
            consumer="police",
            details={"record_count": "2"},
            at=dt.datetime(2026, 11, 2, 23, 30, tzinfo=dt.UTC),
        ),
        Draft(
            Action.RECORDS_DELIVERED,
            "router",
            Decision.DELIVERED,
            consumer="hrss",
            details={"record_count": "1"},
            at=at(3),
        ),
        Draft(Action.SUBSCRIPTION_DENIED, "hrss", Decision.DENIED, at=at(4)),
        Draft(Action.COMMAND_REFUSED, "hrss", Decision.DENIED, at=at(4)),
        Draft(Action.APPLICATION_OVERDUE, "router", Decision.OVERDUE, at=at(5)),
        Draft(
            Action.SUBSCRIPTION_DENIED, "hrss", Decision.DENIED, at=at(1, 0) - dt.timedelta(hours=1)
        ),
    ]
    data = charts.daily(chain(drafts, writer="w"), Period(2026, 11))
    assert len(data["days"]) == 30
    assert data["delivered"]["police"][1:3] == [5, 2]
    assert data["delivered"]["hrss"][2] == 1
    assert data["refused"][3] == 2
    assert sum(data["refused"]) == 2  # the October one is left out
    assert data["overdue"][4] == 1
    assert charts.totals(data)["delivered:police"] == 7


def test_router_health_reads_the_metrics_and_flags_problems() -> None:
    text = (
        "# TYPE gov_exchange_routing_paused gauge\n"
        "gov_exchange_routing_paused 1.0\n"
        "# TYPE gov_exchange_records_delivered counter\n"
        'gov_exchange_records_delivered_total{resource="a",consumer="x"} 3.0\n'
        'gov_exchange_records_delivered_total{resource="b",consumer="y"} 4.0\n'
    )
    figures = health.figures(health.parse(text))
    shown = {label: (value, alarm) for label, value, alarm in figures}
    assert shown["已投递记录 records delivered"] == (7.0, False)
    assert shown["路由暂停 routing paused"] == (1.0, True)
    assert not health.Instance("u", True, figures=figures).healthy
    assert health.Instance("u", True, figures=figures[1:]).healthy


def test_the_preview_masks_made_up_records_and_checks_filters_like_the_book(
    sample_catalog: Catalog,
) -> None:
    res = sample_catalog.resources[BMC]
    pv = preview.preview_masks(res, ["mother_id_number"], {"mother_id_number": "keep:6:4"})
    assert pv.errors == {}
    for [(original, shown)] in pv.rows:
        assert len(original) == 18
        assert shown == original[:6] + "*" * 8 + original[-4:]
    bad = preview.preview_masks(res, ["birth_weight_grams"], {"birth_weight_grams": "surname"})
    assert "birth_weight_grams" in bad.errors
    ok = preview.check_filter(res, 'region_code.startsWith("33")')
    assert ok.ok
    assert ok.total == preview.SAMPLES
    assert not preview.check_filter(res, "nosuch == 1").ok
    assert "not a field" in preview.check_filter(res, "nosuch == 1").message
    assert not preview.check_filter(res, 'region_code + "x"').ok  # not a boolean
