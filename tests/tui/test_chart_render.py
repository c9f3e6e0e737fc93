"""The braille chart renderer, on fixed series: what each cell shows, read as a user would."""

from __future__ import annotations

from fleettop.rollup import Point
from fleettop.tui.widgets.chart import DATA, EMPTY, OVER, SPREAD, THRESHOLD, Scale, render_chart


def text(rows: list[list[tuple[str, str]]]) -> list[str]:
    return ["".join(char for char, _ in row) for row in rows]


def kinds(rows: list[list[tuple[str, str]]]) -> list[str]:
    return [
        "".join({EMPTY: ".", DATA: "d", SPREAD: "s", OVER: "!", THRESHOLD: "-"}[kind] for _, kind in row)
        for row in rows
    ]


def samples(values: list[float], every: int = 60) -> list[Point]:
    return [Point(i * every, 1, v, v, v) for i, v in enumerate(values)]


def test_a_rising_line_is_continuous_and_crosses_the_threshold_in_the_alert_style():
    rows = render_chart(samples([0, 25, 50, 75, 100]), 0, 300, 5, 2, Scale(100), threshold=90)
    assert text(rows) == ["⠂⠂⣂⠦⠋", "⣀⠖⠁  "]
    assert kinds(rows) == ["--dd!", "ddd.."]


def test_a_flat_series_is_one_row_of_dots_and_the_scale_is_absolute():
    """A disk steady at 50 % sits mid-height on 0-100, not stretched to fill the chart."""
    rows = render_chart(samples([50.0] * 10), 0, 600, 5, 2, Scale(100))
    assert text(rows) == ["⣀⣀⣀⣀⣀", "     "]  # level 4 of 0-7: the lowest dots of the upper row


def test_a_bucket_draws_its_spread_from_minimum_to_maximum():
    """One hourly point from 10 % to 90 %: a spike inside the hour shows."""
    rows = render_chart([Point(0, 12, 10, 20, 90)], 0, 3600, 1, 2, Scale(100))
    assert text(rows) == ["⣶", "⠿"]


def test_the_average_is_the_line_and_the_spread_a_dimmer_band_behind_it():
    """Hourly points averaging 20 % with minutes from 10 % to 90 %: the line at 20 %, the band
    above and below it, and the cells where the band reaches the 80 % threshold in alert."""
    rows = render_chart([Point(h * 3600, 60, 10, 20, 90) for h in range(4)], 0, 4 * 3600, 4, 4, Scale(100), 80)
    assert kinds(rows) == ["!!!!", "ssss", "ssss", "dddd"]  # the threshold's dots hidden under the band
    assert text(rows) == ["⣶⣶⣶⣶", "⣿⣿⣿⣿", "⣿⣿⣿⣿", "⠛⠛⠛⠛"]  # 90 % is level 14 of 0-15, 10 % level 2


def test_a_gap_in_the_history_is_a_gap_in_the_chart():
    values = samples([30.0] * 3) + [Point(i * 60, 1, 30, 30, 30) for i in range(7, 10)]
    assert text(render_chart(values, 0, 600, 10, 1, Scale(100))) == ["⠤⠤⠤    ⠤⠤⠤"]


def test_nothing_to_draw_and_values_off_the_scale():
    assert text(render_chart([], 0, 600, 4, 2, Scale(100), threshold=90)) == ["⠂⠂⠂⠂", "    "]
    assert render_chart(samples([1.0]), 0, 60, 0, 2, Scale(100)) == []
    rows = render_chart(samples([250.0, -5.0]), 0, 120, 1, 1, Scale(100))  # clamped, not wrapped
    assert text(rows) == ["⢱"]
    assert Scale.for_values(None, 0.3).top == 1.0 and Scale.for_values(None, 4.0).top == 4.0
    assert Scale.for_values(100.0, 400.0).top == 100.0
