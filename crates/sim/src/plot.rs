//! Draws sessions held per class over time, one panel per policy, into a
//! PNG file. Text is rendered with ab_glyph from a TrueType font file the
//! caller names, so no system font lookup is needed.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::engine::PolicyRun;

/// Font used when no `--font` is given (Debian package fonts-dejavu-core).
pub const DEFAULT_FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// Maximum number of distinct font files one process registers. plotters keeps
/// registered fonts for the life of the process, so their bytes are
/// leaked once per file and this bounds that memory.
const FONTS_MAX: usize = 8;

/// Maximum size of a font file read, well above any real TrueType font.
const FONT_BYTES_MAX: u64 = 64 * 1024 * 1024;

const WIDTH: u32 = 1300;
/// Width of the legend strip right of each panel.
const LEGEND_WIDTH: u32 = 180;
const PANEL_HEIGHT: u32 = 300;
const TITLE_HEIGHT: u32 = 50;

/// Font files registered so far and the family names they were given.
static FONTS: Mutex<Vec<(PathBuf, &'static str)>> = Mutex::new(Vec::new());

/// Line colours per class, in report order; later classes reuse them.
const CLASS_COLOURS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
];

/// Registers the font at `path` with plotters once; returns its family name.
fn font_family(path: &Path) -> Result<&'static str, String> {
    let mut fonts = FONTS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((_, family)) = fonts.iter().find(|(known, _)| known == path) {
        return Ok(family);
    }
    if fonts.len() >= FONTS_MAX {
        return Err(format!(
            "font file {}: this process already registered {FONTS_MAX} fonts; reuse one of them",
            path.display()
        ));
    }
    let metadata = std::fs::metadata(path).map_err(|err| match err.kind() {
        std::io::ErrorKind::NotFound => format!(
            "font file {} not found; install the Debian package fonts-dejavu-core or pass --font with a .ttf file",
            path.display()
        ),
        _ => format!("cannot read font file {}: {err}", path.display()),
    })?;
    if metadata.len() > FONT_BYTES_MAX {
        return Err(format!("font file {} is larger than 64 MiB; pass --font with a .ttf file", path.display()));
    }
    let bytes = std::fs::read(path).map_err(|err| format!("cannot read font file {}: {err}", path.display()))?;
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    let family: &'static str = Box::leak(format!("roost-sim-font-{}", fonts.len()).into_boxed_str());
    plotters::style::register_font(family, FontStyle::Normal, bytes).map_err(|_| {
        format!("font file {} is not a TrueType or OpenType font; pass --font with a .ttf file", path.display())
    })?;
    fonts.push((path.to_path_buf(), family));
    Ok(family)
}

/// Writes the plot of `runs` to the PNG file `path`.
pub fn write_plot(path: &Path, font: &Path, scenario: &str, seed: u64, collapse_factor: f64, runs: &[PolicyRun]) -> Result<(), String> {
    if runs.is_empty() {
        return Err("no policy ran, so there is nothing to plot".to_owned());
    }
    let family = font_family(font)?;
    let height = TITLE_HEIGHT + PANEL_HEIGHT * runs.len() as u32;
    let failed = |err: &dyn std::fmt::Display| format!("cannot draw the plot {}: {err}", path.display());

    let root = BitMapBackend::new(path, (WIDTH, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|err| failed(&err))?;
    let title = format!("{scenario}: sessions held per class over time (seed {seed})");
    let root = root.titled(&title, (family, 26)).map_err(|err| failed(&err))?;
    let panels = root.split_evenly((runs.len(), 1));

    for (panel, run) in panels.iter().zip(runs) {
        draw_panel(panel, family, collapse_factor, run).map_err(|err| failed(&err))?;
    }
    root.present().map_err(|err| failed(&err))?;
    Ok(())
}

fn draw_panel(
    panel: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    family: &'static str,
    collapse_factor: f64,
    run: &PolicyRun,
) -> Result<(), Box<dyn std::error::Error>> {
    let series = &run.series;
    let end = series.minutes.last().copied().unwrap_or(0.0).max(1.0);
    let totals: Vec<u32> =
        (0..series.minutes.len()).map(|sample| series.held.iter().map(|class| class[sample]).sum()).collect();
    let highest = totals.iter().copied().max().unwrap_or(0);
    let collapse_line = (f64::from(series.capacity) * collapse_factor) as u32;
    let y_max = (highest.max(series.capacity) as f64 * 1.15).ceil() as u32 + 1;

    // The legend gets its own strip to the right, so it never hides a line.
    let (plot_area, legend_area) = panel.split_horizontally(WIDTH - LEGEND_WIDTH);
    let mut chart = ChartBuilder::on(&plot_area)
        .caption(caption(run), (family, 18))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..end, 0u32..y_max)?;
    chart
        .configure_mesh()
        .x_desc("minutes")
        .x_label_formatter(&|minutes| format!("{minutes:.0}"))
        .y_desc("sessions held")
        .label_style((family, 14))
        .axis_desc_style((family, 15))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()?;

    let mut legend: Vec<(String, ShapeStyle)> = Vec::new();
    let style = RGBColor(110, 110, 110).stroke_width(1);
    chart.draw_series(LineSeries::new(series.minutes.iter().copied().zip(totals.iter().copied()), style))?;
    legend.push(("all classes".to_owned(), style));
    for (index, (name, held)) in series.classes.iter().zip(&series.held).enumerate() {
        let style = CLASS_COLOURS[index % CLASS_COLOURS.len()].stroke_width(2);
        chart.draw_series(LineSeries::new(series.minutes.iter().copied().zip(held.iter().copied()), style))?;
        legend.push((name.clone(), style));
    }
    // Limits last, so that they stay visible where a class runs along them.
    let capacity = series.capacity;
    let style = RED.stroke_width(2);
    chart.draw_series(DashedLineSeries::new([(0.0, capacity), (end, capacity)], 10, 6, style))?;
    legend.insert(0, (format!("capacity ({capacity})"), style));
    if run.report.name == "none" && collapse_line < y_max {
        let style: ShapeStyle = RGBColor(120, 0, 0).stroke_width(1);
        chart.draw_series(DashedLineSeries::new([(0.0, collapse_line), (end, collapse_line)], 4, 4, style))?;
        legend.insert(1, (format!("collapse ({collapse_line})"), style));
    }

    let text = TextStyle::from((family, 14).into_font()).color(&BLACK);
    for (row, (label, style)) in legend.iter().enumerate() {
        let y = 50 + 22 * row as i32;
        legend_area.draw(&PathElement::new(vec![(8, y), (36, y)], *style))?;
        legend_area.draw(&Text::new(label.as_str(), (44, y - 8), text.clone()))?;
    }
    Ok(())
}

/// Formats a panel's title: the policy and, per class, the share of logins
/// served, Jain's index of connected time and the maximum wait.
fn caption(run: &PolicyRun) -> String {
    let mut text = format!("policy {}", run.report.name);
    for class in &run.report.classes {
        text.push_str(&format!(
            "  |  {}: {:.1} % served, Jain {:.3}, max wait {:.0} s",
            class.name,
            class.served_fraction * 100.0,
            class.jain_connected_time,
            class.max_wait_s
        ));
    }
    text
}
