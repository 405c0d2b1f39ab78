//! Bar charts drawn on the server as SVG (the dashboard's days, a newsletter's results over
//! time), each shown beside a table of the same numbers for screen readers and for copying.

use serde::Serialize;

/// Chart geometry, in the SVG's own units.
const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 200.0;
const LEFT: f64 = 40.0;
const BOTTOM: f64 = 24.0;
/// Room on the right for the last point's label.
const RIGHT: f64 = 24.0;

#[derive(Serialize)]
pub struct Bar {
    x: f64,
    y: f64,
    width: f64,
    height: f64,
    series: &'static str,
    /// What the bar's tooltip says: the count, or "fewer than N" where it is not shown exactly.
    value: String,
    label: String,
}

#[derive(Serialize)]
pub struct Chart {
    bars: Vec<Bar>,
    /// (y, label) of the horizontal grid lines.
    pub ticks: Vec<(f64, i64)>,
    /// (x, text) of the labelled points.
    labels: Vec<(f64, String)>,
    series: Vec<&'static str>,
    /// Where the plot ends, and the whole drawing's width.
    width: f64,
    view_width: f64,
    height: f64,
    left: f64,
    base: f64,
}

/// A rounded maximum for the axis: 1, 2 or 5 times a power of ten, at least `max`.
fn nice_max(max: i64) -> i64 {
    let mut step = 1;
    loop {
        for m in [1, 2, 5] {
            if m * step >= max.max(1) {
                return m * step;
            }
        }
        step *= 10;
    }
}

/// A named series of a chart and how to read it from a point.
pub type Series<T> = (&'static str, fn(&T) -> i64);

/// Bars for every point and series, a label under every `label_every`th point counted back from
/// the last one.
pub fn chart<T>(
    points: &[T],
    label: impl Fn(&T) -> String,
    series: &[Series<T>],
    label_every: usize,
) -> Chart {
    chart_hiding(points, label, series, label_every, Some, "")
}

/// As `chart`, but `shown` says how a count may be shown: `None` draws no bar and its tooltip
/// says `hidden` instead (a count below the results' threshold).
pub fn chart_hiding<T>(
    points: &[T],
    label: impl Fn(&T) -> String,
    series: &[Series<T>],
    label_every: usize,
    shown: impl Fn(i64) -> Option<i64>,
    hidden: &str,
) -> Chart {
    let max = points
        .iter()
        .flat_map(|p| series.iter().filter_map(|(_, f)| shown(f(p))))
        .max()
        .unwrap_or(0);
    let top = nice_max(max) as f64;
    let plot = HEIGHT - BOTTOM - 8.0;
    let base = HEIGHT - BOTTOM;
    let slot = (WIDTH - LEFT - RIGHT) / points.len().max(1) as f64;
    let bar = (slot - 4.0) / series.len().max(1) as f64;
    let mut bars = Vec::new();
    for (i, point) in points.iter().enumerate() {
        for (j, (name, value)) in series.iter().enumerate() {
            let (height, value) = match shown(value(point)) {
                Some(n) => (n as f64 / top * plot, n.to_string()),
                None => (0.0, hidden.to_owned()),
            };
            bars.push(Bar {
                x: LEFT + i as f64 * slot + 2.0 + j as f64 * bar,
                y: base - height,
                width: bar,
                height,
                series: name,
                value,
                label: label(point),
            });
        }
    }
    // Grid lines at whole numbers only: 0–5 by 1, 0–2 by 1, 0–10 by 2, 0–200 by 40…
    let top_n = top as i64;
    let divisions = [5, 4, 2, 1]
        .into_iter()
        .find(|d| top_n % d == 0 && top_n >= *d)
        .unwrap_or(1);
    let ticks = (0..=divisions)
        .map(|k| {
            let value = top_n * k / divisions;
            (base - value as f64 / top * plot, value)
        })
        .collect();
    let every = label_every.max(1);
    let labels = points
        .iter()
        .enumerate()
        .filter(|(i, _)| (points.len() - 1 - i) % every == 0)
        .map(|(i, p)| (LEFT + (i as f64 + 0.5) * slot, label(p)))
        .collect();
    Chart {
        bars,
        ticks,
        labels,
        series: series.iter().map(|(name, _)| *name).collect(),
        width: WIDTH - RIGHT,
        view_width: WIDTH,
        height: HEIGHT,
        left: LEFT,
        base,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_maxima_are_round() {
        assert_eq!(nice_max(0), 1);
        assert_eq!(nice_max(3), 5);
        assert_eq!(nice_max(7), 10);
        assert_eq!(nice_max(101), 200);
    }

    #[test]
    fn grid_lines_fall_on_whole_numbers() {
        let points: Vec<i64> = (0..3).collect();
        let drawn = chart(&points, |p| p.to_string(), &[("signups", |p| *p)], 7);
        let labels: Vec<i64> = drawn.ticks.iter().map(|(_, v)| *v).collect();
        assert_eq!(labels, [0, 1, 2]);
    }

    #[test]
    fn hidden_counts_draw_no_bar_and_say_why() {
        let points: Vec<i64> = vec![3, 40];
        let drawn = chart_hiding(
            &points,
            |p| p.to_string(),
            &[("unsubscribes", |p| *p)],
            1,
            |n| (n >= 5).then_some(n),
            "fewer than 5",
        );
        assert_eq!(drawn.bars[0].height, 0.0);
        assert_eq!(drawn.bars[0].value, "fewer than 5");
        assert_eq!(drawn.bars[1].value, "40");
    }
}
