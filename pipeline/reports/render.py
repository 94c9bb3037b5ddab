"""The report written out: a table for people, CSV (one row per group, with a header), JSON, the
charts, and a standalone HTML document with bilingual headings (for a file, or to print).

The headings are Chinese and English side by side (:data:`HEADINGS`); the web page shows them in
the reader's language from its own translations, under the same keys (``reports.<key>``)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from datetime import tzinfo
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from pipeline.reports.charts import Bar, bar_chart, histogram, line_chart
from pipeline.reports.figures import Report

TEMPLATES = Path(__file__).resolve().parent / "templates"
BARS = 30  # groups drawn as bars at most (the most records first); the tables list them all
CSV_FIELDS = ("key", "withheld", "received", "on_time", "late", "on_time_rate", "working_days_late_max")
# Leading characters that make a spreadsheet read a cell as a formula.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

# Every heading, in Chinese and English.
HEADINGS: dict[str, tuple[str, str]] = {
    "title": ("执法音视频记录统计与监督报告", "Statistics and supervision report"),
    "period": ("统计期间（接收日）", "Period (days received)"),
    "produced": ("生成时间", "Produced"),
    "unit": ("单位", "Unit"),
    "summary": ("总体情况", "Summary"),
    "received": ("接收记录", "Records received"),
    "on_time": ("按时上传", "On time"),
    "late": ("逾期上传", "Late"),
    "on_time_rate": ("按时率", "On-time rate"),
    "withheld": ("涉密未授权（不计事实）", "Withheld (facts not counted)"),
    "damaged": ("损坏或无法读取", "Damaged or unreadable"),
    "derivatives_failed": ("访问副本制作失败", "Access copy failed"),
    "fixity_problems": ("完整性校验未通过", "Failed a fixity check"),
    "worst_late": ("逾期最久的记录", "Latest records"),
    "item": ("记录", "Record"),
    "working_days_late": ("逾期工作日", "Working days late"),
    "provisional_pending": ("临时期限待复核", "Provisional deadlines pending review"),
    "unclassified": ("未定密级", "Unclassified"),
    "storage_bytes": ("存储用量（字节）", "Storage used (bytes)"),
    "storage_growth": ("月均增长（字节）", "Growth per month (bytes)"),
    "storage_projection": ("12个月后预计（字节）", "Projected in 12 months (bytes)"),
    "missing": ("缺少要素", "Missing facts"),
    "groups": ("分组", "Groups"),
    "key": ("分组键", "Key"),
    "working_days_late_max": ("最多逾期工作日", "Most working days late"),
    "by_kind": ("按媒体类型", "By media kind"),
    "kind": ("类型", "Kind"),
    "bytes": ("字节", "Bytes"),
    "duration": ("时长（秒）", "Duration (s)"),
    "months": ("按月", "By month"),
    "month": ("月份", "Month"),
    "bytes_added": ("新增字节", "Bytes added"),
    "retrievals": ("调阅情况", "Retrievals"),
    "action": ("操作", "Action"),
    "user": ("用户", "User"),
    "count": ("次数", "Count"),
    "classification": ("密级", "Class"),
    "package_requested": ("申请制作", "Requested"),
    "package_verified": ("制作并校验通过", "Verified"),
    "package_failed": ("失败", "Failed"),
    "package_discs": ("光盘映像数", "Disc images"),
    "package_discs_verified": ("校验通过的光盘映像", "Disc images verified"),
    "package_bytes": ("总字节数", "Bytes"),
    "class_none": ("无", "None"),
    "class_unclassified": ("未定密级", "Unclassified"),
    "class_privacy": ("个人隐私", "Personal privacy"),
    "class_trade-secret": ("商业秘密", "Trade secret"),
    "class_state-secret": ("国家秘密", "State secret"),
    "class_other": ("报告、日志等", "Reports, the log and the like"),
    "queues": ("待处理队列", "Review queues"),
    "queue": ("队列", "Queue"),
    "size": ("数量", "Size"),
    "oldest": ("最早", "Oldest"),
    "packages": ("光盘刻录包", "Disc packages"),
    "chart_groups": ("各组按时与逾期", "On time and late per group"),
    "chart_months": ("每月接收量与按时率", "Records per month and on-time rate"),
    "chart_late": ("逾期工作日分布", "Working days late"),
    "other": ("期限未知", "Deadline unknown"),
    "none": ("（无）", "(none)"),
    "withheld_group": ("（涉密，未显示）", "(withheld)"),
    "not_permitted": ("无权查看", "not permitted"),
    "case_number": ("案件编号", "Case number"),
    "captured_at": ("拍摄时间", "Capture time"),
    "captured_place": ("拍摄地点", "Capture place"),
    "collector": ("采集人", "Collector"),
    "proof_object": ("证明对象", "Proof object"),
    "by.officer": ("按民警", "By officer"),
    "by.dock": ("按采集站", "By dock"),
    "by.case": ("按案件", "By case"),
    "by.target": ("按执法对象", "By target"),
    "by.month": ("按月", "By month"),
    # the review queues, as the queues page names them
    "queue.late": ("逾期上传", "Uploaded late"),
    "queue.damaged": ("文件损坏或不完整", "Damaged or truncated media"),
    "queue.clock_drift": ("设备时钟偏差", "Clock drift"),
    "queue.provisional": ("期限暂定", "Provisional deadline"),
    "queue.fixity": ("完整性校验问题", "Fixity problems"),
    "queue.unclassified": ("尚未定密", "Not yet classified"),
    "queue.missing.case_number": ("缺少案件编号", "Missing case number"),
    "queue.missing.captured_at": ("缺少拍摄时间", "Missing capture time"),
    "queue.missing.captured_place": ("缺少拍摄地点", "Missing capture place"),
    "queue.missing.collector": ("缺少采集人", "Missing collector"),
    "queue.missing.proof_object": ("缺少证明对象", "Missing proof object"),
}


def bilingual(key: str) -> str:
    """The heading ``key`` in Chinese and English (the key itself when there is none)."""
    zh, en = HEADINGS.get(key, (key, key))
    return f"{zh} {en}"


def group_label(key: str | None, withheld: bool, say: Callable[[str], str]) -> str:
    """A group's key as shown: the withheld records' group and records without the fact named in
    the reader's words."""
    if withheld:
        return say("withheld_group")
    return say("none") if key is None else key


def charts(report: Report, say: Callable[[str], str] = bilingual) -> dict[str, Markup]:
    """The three charts as SVG, marked safe for a template (every text in them is escaped):
    ``groups`` (bars, the groups with the most records), ``months`` (records and on-time rate per
    month), ``late`` (working days late)."""
    biggest = sorted(report.groups, key=lambda g: -g.received)[:BARS]
    bars = [
        Bar(group_label(g.key, g.withheld, say), g.on_time, g.late, g.received - g.on_time - g.late) for g in biggest
    ]
    legend = (say("on_time"), say("late"), say("other"))
    points = [(m.month, m.received, m.on_time_rate) for m in report.months]
    return {
        "groups": Markup(bar_chart(bars, f"{say('chart_groups')} · {say('by.' + report.by.value)}", legend=legend)),
        "months": Markup(line_chart(points, say("chart_months"), legend=(say("received"), say("on_time_rate")))),
        "late": Markup(histogram(report.late_days, say("chart_late"), axis=say("working_days_late_max"))),
    }


def as_json(report: Report) -> str:
    """The report as one JSON object (:meth:`Report.as_json`), on one line."""
    return json.dumps(report.as_json(), ensure_ascii=False)


def _cell(value: object) -> object:
    """A CSV cell: None as empty; a text a spreadsheet would take for a formula, quoted with a
    leading apostrophe (names are hostile input)."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def as_csv(report: Report) -> str:
    """One row per group under a header row (:data:`CSV_FIELDS`); ``withheld`` is 1 for the group
    of records whose facts are withheld from the viewer."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for group in report.groups:
        rate = group.on_time / (group.on_time + group.late) if group.on_time + group.late else None
        writer.writerow(
            [
                _cell(group.key),
                int(group.withheld),
                group.received,
                group.on_time,
                group.late,
                "" if rate is None else f"{rate:.4f}",
                _cell(group.working_days_late_max),
            ]
        )
    return out.getvalue()


def _percent(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.1%}"


def as_table(report: Report, zone: tzinfo) -> str:
    """The report for people, as aligned text."""
    period = report.period.as_json()
    lines = [
        f"{bilingual('period')}: {period['from'] or '…'} – {period['to'] or '…'} ({period['zone']})",
        f"{bilingual('produced')}: {report.produced_at.astimezone(zone):%Y-%m-%d %H:%M:%S}",
        "",
        f"{bilingual('received')}: {report.received}",
        f"{bilingual('on_time')}: {report.on_time}",
        f"{bilingual('late')}: {report.late}",
        f"{bilingual('on_time_rate')}: {_percent(report.on_time_rate)}",
    ]
    if report.withheld:
        lines.append(f"{bilingual('withheld')}: {report.withheld}")
    lines += [
        f"{bilingual('damaged')}: {report.damaged}",
        f"{bilingual('derivatives_failed')}: {report.derivatives_failed}",
        f"{bilingual('fixity_problems')}: {report.fixity_problems}",
        f"{bilingual('provisional_pending')}: {report.provisional_pending}",
        f"{bilingual('storage_bytes')}: {report.storage_bytes}",
        "",
        bilingual("missing") + ":",
        *(f"  {bilingual(fact)}: {n}" for fact, n in report.missing.items()),
        "",
        f"{bilingual('by.' + report.by.value)}:",
    ]
    width = max((len(_shown_key(g.key, g.withheld)) for g in report.groups), default=4)
    width = min(max(width, 4), 40)
    lines.append(f"  {'key':<{width}}  {'received':>8}  {'on time':>8}  {'late':>6}  {'rate':>7}  {'worst':>5}")
    for g in report.groups:
        rate = g.on_time / (g.on_time + g.late) if g.on_time + g.late else None
        worst = "-" if g.working_days_late_max is None else str(g.working_days_late_max)
        key = _shown_key(g.key, g.withheld)[:width]
        lines.append(f"  {key:<{width}}  {g.received:>8}  {g.on_time:>8}  {g.late:>6}  {_percent(rate):>7}  {worst:>5}")
    if report.retrievals is not None:
        lines += ["", bilingual("retrievals") + ":"]
        lines += [f"  {action}: {n}" for action, n in report.retrievals.items()] or ["  -"]
        if report.retrievals_by_classification is not None:
            lines += ["", bilingual("classification") + ":"]
            lines += [f"  {c}: {n}" for c, n in report.retrievals_by_classification.items()] or ["  -"]
    lines += ["", bilingual("queues") + ":"]
    lines += [f"  {q.name}: {q.size}" for q in report.queues]
    return "\n".join(lines)


def _shown_key(key: str | None, withheld: bool) -> str:
    """A key for a terminal: its control characters shown as ``?`` (names are hostile input)."""
    shown = group_label(key, withheld, lambda k: HEADINGS[k][1])
    return "".join(ch if ch.isprintable() else "?" for ch in shown)


def html_document(report: Report, *, zone: tzinfo, unit: str | None = None) -> str:
    """The report as a standalone HTML document (for a file, or to print to PDF): bilingual
    headings, the unit's name, the period, the production time, the charts and the tables."""
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined, trim_blocks=True)
    return env.get_template("report.html").render(
        report=report,
        figures=report.as_json(),
        charts=charts(report),
        h=bilingual,
        unit=unit,
        produced=f"{report.produced_at.astimezone(zone):%Y-%m-%d %H:%M:%S}",
        label=lambda key, withheld: group_label(key, withheld, bilingual),
        percent=_percent,
    )
