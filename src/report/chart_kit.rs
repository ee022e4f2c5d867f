//! The drawing toolkit every chart shares (the run charts, cost, faults, capacity and sweep), so
//! they look alike and each piece is written once: a [`Picture`] drawn to SVG and PNG by
//! [`render`] with the embedded font, the model colours, the plot frame and axes, legends and the
//! "no data" notice. The charts themselves live in the files that use this one; nothing here
//! knows which charts exist.

use std::path::Path;
use std::sync::Once;

use plotters::coord::ranged1d::{AsRangedCoord, DefaultFormatting, KeyPointHint, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;

use super::load::{ReportError, RunData};
use super::table::fmt_us;
use crate::model_kind::ModelKind;
use crate::record::results::TimeseriesRow;

/// The font family every chart draws text with (the embedded font is registered under it).
pub const FONT: &str = "sans-serif";
static FONT_BYTES: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans-subset.ttf");

/// Makes the embedded font the one plotters draws `sans-serif` with, so PNGs render on a
/// machine with no fonts installed.
fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The bytes are a valid TrueType font checked in with the source; a test renders PNGs.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, FONT_BYTES);
    });
}

/// A region to draw in.
pub type Area<DB> = DrawingArea<DB, Shift>;
/// What drawing returns: plotters' errors as text, since they are generic over the backend.
pub type DrawResult = Result<(), String>;

/// Any plotters error as the text a [`DrawResult`] carries.
pub fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// One chart, drawn by one generic function so that its SVG and its PNG are the same picture.
pub trait Picture {
    /// The chart's name in error messages.
    fn name(&self) -> &'static str;
    /// Pixel size of the PNG (and the SVG's view box).
    fn size(&self) -> (u32, u32);
    /// Draws the chart onto `root`, which is already white.
    fn draw<DB: DrawingBackend>(&self, root: &Area<DB>) -> DrawResult;
}

/// Draws `picture` into `dir` as `<file_stem>.svg` and `<file_stem>.png`; returns the SVG text,
/// for pages that inline it.
pub fn render(picture: &impl Picture, dir: &Path, file_stem: &str) -> Result<String, ReportError> {
    register_font();
    let failed = |reason: String| ReportError::Draw {
        chart: picture.name(),
        reason,
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, picture.size()).into_drawing_area();
        root.fill(&WHITE).map_err(|e| failed(err(e)))?;
        picture.draw(&root).map_err(failed)?;
        root.present().map_err(|e| failed(err(e)))?;
    }
    let svg_path = dir.join(format!("{file_stem}.svg"));
    std::fs::write(&svg_path, &svg).map_err(|e| ReportError::Write {
        path: svg_path,
        reason: e.to_string(),
    })?;
    let png_path = dir.join(format!("{file_stem}.png"));
    let root = BitMapBackend::new(&png_path, picture.size()).into_drawing_area();
    root.fill(&WHITE).map_err(|e| failed(err(e)))?;
    picture.draw(&root).map_err(failed)?;
    root.present().map_err(|e| ReportError::Write {
        path: png_path.clone(),
        reason: e.to_string(),
    })?;
    Ok(svg)
}

/// The categorical colours of matplotlib's `tab10`, by name. (plotters' prelude has pure `RED`,
/// `BLUE`, ...; these are the softer ones, so they live in their own namespace.)
pub mod tab10 {
    use plotters::style::RGBColor;

    /// Blue: webhook, first run.
    pub const BLUE: RGBColor = RGBColor(31, 119, 180);
    /// Orange: WebSocket, first run.
    pub const ORANGE: RGBColor = RGBColor(255, 127, 14);
    /// Green.
    pub const GREEN: RGBColor = RGBColor(44, 160, 44);
    /// Red.
    pub const RED: RGBColor = RGBColor(214, 39, 40);
    /// Purple.
    pub const PURPLE: RGBColor = RGBColor(148, 103, 189);
    /// Brown.
    pub const BROWN: RGBColor = RGBColor(140, 86, 75);
    /// Pink.
    pub const PINK: RGBColor = RGBColor(227, 119, 194);
    /// Cyan.
    pub const CYAN: RGBColor = RGBColor(23, 190, 207);
    /// Olive.
    pub const OLIVE: RGBColor = RGBColor(188, 189, 34);
    /// Gray.
    pub const GRAY: RGBColor = RGBColor(127, 127, 127);
    /// A dark green (beyond tab10: a fourth shade for server-sent events).
    pub const DARK_GREEN: RGBColor = RGBColor(30, 95, 30);
    /// Goldenrod (beyond tab10: long polling's own hue).
    pub const GOLD: RGBColor = RGBColor(204, 150, 0);
    /// Near black.
    pub const BLACK: RGBColor = RGBColor(40, 40, 40);
}

/// A model's colours, one per overlaid run: webhooks blue, WebSocket warm, server-sent events
/// green, long polling gold and black, so the model reads at a glance and the run from the shade.
fn palette(model: ModelKind) -> [RGBColor; 4] {
    use tab10::*;
    match model {
        ModelKind::Webhook => [BLUE, PURPLE, CYAN, GRAY],
        ModelKind::WebSocket => [ORANGE, RED, PINK, BROWN],
        ModelKind::Sse => [GREEN, OLIVE, DARK_GREEN, RGBColor(120, 200, 120)],
        ModelKind::LongPoll => [GOLD, BLACK, RGBColor(140, 100, 0), RGBColor(120, 120, 120)],
    }
}

/// The colour of `model` in the `run`-th of the overlaid runs (0 for a single run).
pub fn model_color(model: ModelKind, run: usize) -> RGBColor {
    let colors = palette(model);
    colors[run % colors.len()]
}

/// One line of a run chart: a model in a run.
pub struct Series<'a> {
    /// The run.
    pub run: &'a RunData,
    /// The model.
    pub model: ModelKind,
    /// The legend name: the model, and the run's label when several are overlaid.
    pub name: String,
    /// Its colour.
    pub color: RGBColor,
}

impl<'a> Series<'a> {
    /// This model's time-series rows in this run.
    pub fn rows(&self) -> impl Iterator<Item = &'a TimeseriesRow> + 'a {
        self.run.series(self.model)
    }

    /// (time, value) for every interval.
    pub fn points(&self, value: impl Fn(&TimeseriesRow) -> f64) -> Vec<(f64, f64)> {
        self.rows().map(|r| (r.t_s, value(r))).collect()
    }
}

/// Every model of every run, coloured by [`model_color`].
pub fn series(runs: &[RunData]) -> Vec<Series<'_>> {
    let mut out = Vec::new();
    for (i, run) in runs.iter().enumerate() {
        for m in &run.summary.models {
            out.push(Series {
                run,
                model: m.model,
                name: if runs.len() == 1 {
                    m.model.to_string()
                } else {
                    format!("{} · {}", m.model, run.label)
                },
                color: model_color(m.model, i),
            });
        }
    }
    out
}

/// A linear axis from `lo` to `hi` whose ticks sit exactly at the keys, each with its own label
/// (plotters' own key-point combinator loses the number formatting the mesh needs).
#[derive(Clone)]
pub struct KeyAxis {
    /// Left (or bottom) end.
    pub lo: f64,
    /// Right (or top) end.
    pub hi: f64,
    /// (position, label) of every tick.
    pub keys: Vec<(f64, String)>,
}

impl KeyAxis {
    /// The label of the tick at `t` (empty between ticks).
    pub fn label(&self, t: f64) -> String {
        self.keys
            .iter()
            .find(|(k, _)| (k - t).abs() < 1e-9)
            .map(|(_, l)| l.clone())
            .unwrap_or_default()
    }
}

impl Ranged for KeyAxis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let span = f64::from(limit.1 - limit.0);
        limit.0 + (span * (value - self.lo) / (self.hi - self.lo)).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, _hint: Hint) -> Vec<f64> {
        self.keys.iter().map(|k| k.0).collect()
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.lo..self.hi
    }
}

/// A plot's frame: the caption over it, the margin, the room for the x labels, and what the
/// axes say. `build` lays it out on an area with the given axes.
pub struct Frame<'f, XV, YV> {
    /// The line under the chart's title, if any.
    pub caption: Option<&'f str>,
    /// Space around the plot.
    pub margin: u32,
    /// Height of the x labels and description under the plot.
    pub x_label_area: u32,
    /// What the x axis measures, with its unit.
    pub x_desc: &'f str,
    /// What the y axis measures, with its unit.
    pub y_desc: &'f str,
    /// Text of an x tick.
    pub x_label: &'f dyn Fn(&XV) -> String,
    /// Text of a y tick.
    pub y_label: &'f dyn Fn(&YV) -> String,
}

/// A chart built by [`Frame::build`].
pub type Plot<'a, DB, X, Y> = ChartContext<
    'a,
    DB,
    Cartesian2d<<X as AsRangedCoord>::CoordDescType, <Y as AsRangedCoord>::CoordDescType>,
>;

impl<XV, YV> Frame<'_, XV, YV> {
    /// Builds the plot on `area` over `x` and `y` and draws its mesh, ticks and descriptions.
    pub fn build<'a, DB, X, Y>(
        &self,
        area: &'a Area<DB>,
        x: X,
        y: Y,
    ) -> Result<Plot<'a, DB, X, Y>, String>
    where
        DB: DrawingBackend,
        X: AsRangedCoord<Value = XV>,
        Y: AsRangedCoord<Value = YV>,
        X::CoordDescType: ValueFormatter<XV>,
        Y::CoordDescType: ValueFormatter<YV>,
    {
        let mut builder = ChartBuilder::on(area);
        if let Some(caption) = self.caption {
            builder.caption(caption, (FONT, 15));
        }
        let mut chart = builder
            .margin(self.margin)
            .x_label_area_size(self.x_label_area)
            .y_label_area_size(80)
            .build_cartesian_2d(x, y)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc(self.x_desc)
            .y_desc(self.y_desc)
            .x_label_formatter(self.x_label)
            .y_label_formatter(self.y_label)
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 15))
            .draw()
            .map_err(err)?;
        Ok(chart)
    }
}

/// A tick: a whole number, or one decimal where the axis is short enough for fractional ticks
/// (a 2 s run, a count that never passed 1), so that no two ticks read the same.
pub fn whole(v: &f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// Milliseconds as a short figure with its unit (`850us`, `1.24ms`).
pub fn ms_label(ms: &f64) -> String {
    fmt_us((ms * 1000.0).round() as u64)
}

/// Log-scale bounds around a set of positive values, with some room above and below.
pub fn log_bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, 0f64);
    for v in values.filter(|v| *v > 0.0) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return (0.01, 1.0);
    }
    (lo * 0.7, (hi * 1.5).max(lo * 2.0))
}

/// The end of the time axis: the last interval of any run (at least 1 s).
pub fn t_max(runs: &[RunData]) -> f64 {
    runs.iter()
        .flat_map(|r| r.timeseries.iter().map(|row| row.t_s))
        .fold(1.0, f64::max)
}

/// A chart with time (s) across and a linear count or rate up, from 0 to the largest of
/// `y_values` (at least 1) with 15% room above it.
pub fn time_axes<'a, DB: DrawingBackend>(
    area: &'a Area<DB>,
    runs: &[RunData],
    caption: &str,
    y_desc: &str,
    y_values: impl Iterator<Item = f64>,
) -> Result<ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>, String> {
    let y_max = y_values.fold(1.0, f64::max) * 1.15;
    Frame {
        caption: Some(caption),
        margin: 12,
        x_label_area: 42,
        x_desc: "time since start (s)",
        y_desc,
        x_label: &whole,
        y_label: &whole,
    }
    .build(area, 0.0..t_max(runs), 0.0..y_max)
}

/// A legend sample: a short solid or dashed stroke.
pub fn legend_line(
    color: RGBColor,
    width: u32,
    dashed: bool,
) -> impl Fn((i32, i32)) -> DashedPathElement<std::vec::IntoIter<(i32, i32)>, i32> {
    // A dash as long as the sample draws it solid.
    let (dash, gap) = if dashed { (5, 3) } else { (20, 0) };
    move |(x, y)| {
        DashedPathElement::new(
            vec![(x, y), (x + 20, y)],
            dash,
            gap,
            ShapeStyle::from(color).stroke_width(width),
        )
    }
}

/// Draws `points` as a line `width` pixels wide, solid or dashed (6 on, 4 off), named `label`
/// in the legend with a matching sample.
pub fn line<'a, DB, X, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    points: Vec<(f64, f64)>,
    color: RGBColor,
    width: u32,
    dashed: bool,
    label: impl Into<String>,
) -> DrawResult
where
    DB: DrawingBackend + 'a,
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    let style = color.stroke_width(width);
    let anno = if dashed {
        chart
            .draw_series(DashedLineSeries::new(points, 6, 4, style))
            .map_err(err)?
    } else {
        chart
            .draw_series(LineSeries::new(points, style))
            .map_err(err)?
    };
    anno.label(label).legend(legend_line(color, width, dashed));
    Ok(())
}

/// Draws the legend of every labelled series at `position`, on a translucent white box.
pub fn legend<'a, DB: DrawingBackend + 'a, X: Ranged, Y: Ranged>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    position: SeriesLabelPosition,
) -> DrawResult {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(180, 180, 180))
        .label_font((FONT, 14))
        .draw()
        .map_err(err)
}

/// Says `message` in grey in the middle of an area that has nothing to plot.
pub fn no_data<DB: DrawingBackend>(area: &Area<DB>, message: &str) -> DrawResult {
    let (w, h) = area.dim_in_pixel();
    area.draw(&Text::new(
        message,
        (w as i32 / 2 - 120, h as i32 / 2),
        (FONT, 20).into_font().color(&RGBColor(120, 120, 120)),
    ))
    .map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn models_never_share_a_colour_across_four_overlaid_runs() {
        let mut seen = Vec::new();
        for model in ModelKind::ALL {
            for run in 0..4 {
                let c = model_color(model, run);
                assert!(!seen.contains(&c), "{c:?} names two models or runs");
                seen.push(c);
            }
        }
        assert_eq!(model_color(ModelKind::Webhook, 0), tab10::BLUE);
        assert_eq!(model_color(ModelKind::WebSocket, 0), tab10::ORANGE);
        assert_eq!(model_color(ModelKind::Sse, 0), tab10::GREEN);
    }

    #[test]
    fn key_axis_labels_only_its_ticks() {
        let axis = KeyAxis {
            lo: 0.0,
            hi: 2.0,
            keys: vec![(0.5, "a".into()), (1.5, "b".into())],
        };
        assert_eq!(axis.label(1.5), "b");
        assert_eq!(axis.label(1.0), "");
        assert_eq!(axis.map(&1.0, (0, 100)), 50);
    }
}
