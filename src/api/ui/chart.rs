//! Charts drawn on the server as SVG: line charts (loss per iteration, one line per run) and
//! bar charts (a step's duration or rows over its last runs, with the median marked). Each is
//! an askama template of its own, rendered to a string the page embeds; every chart has a
//! `<title>` and the numbers it draws are also in a table on the same page.

use askama::Template;

/// Size of the drawing in SVG units; it scales to the page's width.
const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 240.0;
/// Room for the axis labels left of and below the plot.
const LEFT: f64 = 56.0;
const BOTTOM: f64 = 36.0;
const TOP: f64 = 10.0;
const RIGHT: f64 = 12.0;

/// Colours of the series, in order (distinct for the common kinds of colour blindness).
const PALETTE: [&str; 6] = [
    "#0969da", "#cf222e", "#1a7f37", "#8250df", "#9a6700", "#1b7c83",
];

#[derive(Template)]
#[template(path = "line_chart.svg", escape = "html")]
pub(super) struct LineChart {
    title: String,
    width: f64,
    height: f64,
    lines: Vec<Line>,
    x_ticks: Vec<(f64, String)>,
    y_ticks: Vec<(f64, String)>,
    x_label: String,
}

pub(super) struct Line {
    pub label: String,
    colour: &'static str,
    points: String,
}

impl LineChart {
    /// One line per `(label, values)`; x is the value's index plus one (an iteration number).
    pub(super) fn new(title: &str, x_label: &str, series: &[(String, Vec<f64>)]) -> LineChart {
        let finite = || {
            series
                .iter()
                .flat_map(|(_, v)| v.iter().copied())
                .filter(|v| v.is_finite())
        };
        let (low, high) = range(
            finite().fold(f64::INFINITY, f64::min),
            finite().fold(f64::NEG_INFINITY, f64::max),
        );
        let longest = series
            .iter()
            .map(|(_, v)| v.len())
            .max()
            .unwrap_or(0)
            .max(2);
        let x = |i: usize| LEFT + (WIDTH - LEFT - RIGHT) * i as f64 / (longest - 1) as f64;
        let y = |v: f64| TOP + (HEIGHT - TOP - BOTTOM) * (1.0 - (v - low) / (high - low));
        let lines = series
            .iter()
            .enumerate()
            .map(|(n, (label, values))| Line {
                label: label.clone(),
                colour: PALETTE[n % PALETTE.len()],
                points: values
                    .iter()
                    .enumerate()
                    .filter(|(_, v)| v.is_finite())
                    .map(|(i, v)| format!("{:.1},{:.1}", x(i), y(*v)))
                    .collect::<Vec<_>>()
                    .join(" "),
            })
            .collect();
        let x_ticks = ticks(longest)
            .into_iter()
            .map(|i| (x(i), (i + 1).to_string()))
            .collect();
        let y_ticks = (0..=4)
            .map(|i| {
                let v = low + (high - low) * f64::from(i) / 4.0;
                (y(v), short_number(v))
            })
            .collect();
        LineChart {
            title: title.to_string(),
            width: WIDTH,
            height: HEIGHT,
            lines,
            x_ticks,
            y_ticks,
            x_label: x_label.to_string(),
        }
    }
}

#[derive(Template)]
#[template(path = "bar_chart.svg", escape = "html")]
pub(super) struct BarChart {
    title: String,
    width: f64,
    height: f64,
    bars: Vec<Bar>,
    /// The median's y and label, drawn as a dashed line across.
    median: Option<(f64, String)>,
    y_ticks: Vec<(f64, String)>,
}

pub(super) struct Bar {
    x: f64,
    y: f64,
    width: f64,
    height: f64,
    /// The CSS class colouring the bar (a status).
    class: String,
    title: String,
}

impl BarChart {
    /// One bar per `(value, class, title)`, oldest first, on a scale from zero.
    pub(super) fn new(title: &str, values: &[(f64, String, String)], unit: &str) -> BarChart {
        let high = values.iter().map(|(v, _, _)| *v).fold(0.0, f64::max);
        let high = if high > 0.0 { high } else { 1.0 };
        let plot_width = WIDTH - LEFT - RIGHT;
        let slot = plot_width / values.len().max(1) as f64;
        let y = |v: f64| TOP + (HEIGHT - TOP - BOTTOM) * (1.0 - v / high);
        let bars = values
            .iter()
            .enumerate()
            .map(|(i, (value, class, title))| Bar {
                x: LEFT + slot * i as f64 + slot * 0.15,
                y: y(*value),
                width: slot * 0.7,
                height: (HEIGHT - BOTTOM - y(*value)).max(0.5),
                class: class.clone(),
                title: title.clone(),
            })
            .collect();
        let mut sorted: Vec<f64> = values.iter().map(|(v, _, _)| *v).collect();
        sorted.sort_by(f64::total_cmp);
        let median = median(&sorted).map(|m| (y(m), format!("median {}{unit}", short_number(m))));
        let y_ticks = (0..=2)
            .map(|i| {
                let v = high * f64::from(i) / 2.0;
                (y(v), format!("{}{unit}", short_number(v)))
            })
            .collect();
        BarChart {
            title: title.to_string(),
            width: WIDTH,
            height: HEIGHT,
            bars,
            median,
            y_ticks,
        }
    }
}

/// The middle value of sorted numbers (the mean of the two middle ones for an even count).
pub(super) fn median(sorted: &[f64]) -> Option<f64> {
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

/// A value range that can be drawn: a flat or empty series gets some height.
fn range(low: f64, high: f64) -> (f64, f64) {
    if !low.is_finite() || !high.is_finite() {
        (0.0, 1.0)
    } else if high - low < f64::EPSILON * high.abs().max(1.0) {
        (low - 0.5, high + 0.5)
    } else {
        (low, high)
    }
}

/// At most six evenly spread indexes of `0..len`, always the first and the last.
fn ticks(len: usize) -> Vec<usize> {
    let step = len.div_ceil(6).max(1);
    let mut at: Vec<usize> = (0..len).step_by(step).collect();
    if at.last() != Some(&(len - 1)) {
        at.push(len - 1);
    }
    at
}

/// Three significant digits: `0.0123`, `12.3`, `1.23e6`.
pub(super) fn short_number(v: f64) -> String {
    let magnitude = v.abs();
    if v == 0.0 {
        "0".into()
    } else if !(1e-3..1e6).contains(&magnitude) {
        format!("{v:.2e}")
    } else {
        let decimals = (2 - magnitude.log10().floor() as i32).max(0) as usize;
        format!("{v:.decimals$}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_keep_three_significant_digits() {
        assert_eq!(short_number(0.012345), "0.0123");
        assert_eq!(short_number(12.345), "12.3");
        assert_eq!(short_number(1234.0), "1234");
        assert_eq!(short_number(2.5e7), "2.50e7");
        assert_eq!(short_number(0.0), "0");
    }

    #[test]
    fn the_median_of_an_even_count_is_the_mean_of_the_middle_two() {
        assert_eq!(median(&[1.0, 2.0, 3.0]), Some(2.0));
        assert_eq!(median(&[1.0, 2.0, 3.0, 10.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn a_line_falls_as_its_values_fall_and_spans_the_plot() {
        let chart = LineChart::new("loss", "iteration", &[("a".into(), vec![4.0, 2.0, 1.0])]);
        let points: Vec<(f64, f64)> = chart.lines[0]
            .points
            .split(' ')
            .map(|p| {
                let (x, y) = p.split_once(',').unwrap();
                (x.parse().unwrap(), y.parse().unwrap())
            })
            .collect();
        assert_eq!(points.len(), 3);
        assert!((points[0].0 - LEFT).abs() < 0.1 && (points[2].0 - (WIDTH - RIGHT)).abs() < 0.1);
        // SVG's y grows downwards: a falling loss draws lower and lower.
        assert!(points[0].1 < points[1].1 && points[1].1 < points[2].1);
        let svg = chart.render().unwrap();
        assert!(svg.contains("<title>loss</title>"), "{svg}");
    }
}
