//! The pure part: rows, targets, percentiles, the table and the JSON report.

use serde::Serialize;

/// Which way a target points.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub(crate) enum Cmp {
    /// The measured value must be at least the target.
    #[serde(rename = ">=")]
    AtLeast,
    /// The measured value must be at most the target.
    #[serde(rename = "<=")]
    AtMost,
    /// The measured value must be strictly below the target.
    #[serde(rename = "<")]
    Below,
}

/// What a target is about: the row's figure, or its ratio to the floor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Subject {
    Figure,
    Ratio,
}

/// A performance target from design.md.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Target {
    pub(crate) subject: Subject,
    pub(crate) cmp: Cmp,
    pub(crate) value: f64,
    pub(crate) text: String,
}

impl Target {
    /// The ratio must be at least `value` (`≥ 8×`).
    pub(crate) fn ratio_at_least(value: f64) -> Self {
        Self::new(
            Subject::Ratio,
            Cmp::AtLeast,
            value,
            format!("≥ {}×", num(value)),
        )
    }

    /// The ratio must be at most `value` (`≤ 4×`).
    pub(crate) fn ratio_at_most(value: f64) -> Self {
        Self::new(
            Subject::Ratio,
            Cmp::AtMost,
            value,
            format!("≤ {}×", num(value)),
        )
    }

    /// The figure must be at least `value` (`≥ 1,000 /s`).
    pub(crate) fn figure_at_least(value: f64, unit: &str) -> Self {
        Self::new(
            Subject::Figure,
            Cmp::AtLeast,
            value,
            format!("≥ {} {unit}", num(value)),
        )
    }

    /// The figure must be at most `value` (`≤ 2 ms`).
    pub(crate) fn figure_at_most(value: f64, unit: &str) -> Self {
        Self::new(
            Subject::Figure,
            Cmp::AtMost,
            value,
            format!("≤ {} {unit}", num(value)),
        )
    }

    /// The figure must be strictly below `value` (`< 3%`).
    pub(crate) fn figure_below(value: f64, unit: &str) -> Self {
        Self::new(
            Subject::Figure,
            Cmp::Below,
            value,
            format!("< {}{unit}", num(value)),
        )
    }

    fn new(subject: Subject, cmp: Cmp, value: f64, text: String) -> Self {
        Self {
            subject,
            cmp,
            value,
            text,
        }
    }
}

/// What a figure is compared with: a floor measured in the same run, or a peer's
/// published figure.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Floor {
    pub(crate) label: String,
    pub(crate) value: f64,
    pub(crate) unit: String,
}

/// One line of the report.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Row {
    pub(crate) scenario: String,
    pub(crate) figure: f64,
    /// Set for a row that names something not measured in this run: shown instead of
    /// the figure, which is then meaningless (`null` in the JSON).
    pub(crate) unmeasured: Option<String>,
    pub(crate) unit: String,
    pub(crate) floor: Option<Floor>,
    pub(crate) target: Option<Target>,
    pub(crate) note: Option<String>,
}

impl Row {
    pub(crate) fn new(scenario: impl Into<String>, figure: f64, unit: &str) -> Self {
        Self {
            scenario: scenario.into(),
            figure,
            unmeasured: None,
            unit: unit.to_owned(),
            floor: None,
            target: None,
            note: None,
        }
    }

    /// A row for something this run did not measure, saying so (`why`) where the figure
    /// goes; it has no ratio and meets no target.
    pub(crate) fn unmeasured(scenario: impl Into<String>, why: &str) -> Self {
        Self {
            unmeasured: Some(why.to_owned()),
            ..Self::new(scenario, f64::NAN, "")
        }
    }

    /// Compares the figure with `value` (same unit family as the figure): the ratio is
    /// `figure / value`.
    pub(crate) fn floor(mut self, label: impl Into<String>, value: f64, unit: &str) -> Self {
        self.floor = Some(Floor {
            label: label.into(),
            value,
            unit: unit.to_owned(),
        });
        self
    }

    pub(crate) fn target(mut self, target: Target) -> Self {
        self.target = Some(target);
        self
    }

    pub(crate) fn note(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }

    /// `figure / floor`, when there is a floor and it is not zero.
    pub(crate) fn ratio(&self) -> Option<f64> {
        if self.unmeasured.is_some() {
            return None;
        }
        let floor = self.floor.as_ref()?;
        (floor.value != 0.0 && floor.value.is_finite()).then(|| self.figure / floor.value)
    }

    /// Whether the target is met; `None` without a target (or without the ratio it
    /// needs).
    pub(crate) fn met(&self) -> Option<bool> {
        let target = self.target.as_ref()?;
        let value = match target.subject {
            Subject::Figure => self.figure,
            Subject::Ratio => self.ratio()?,
        };
        Some(match target.cmp {
            Cmp::AtLeast => value >= target.value,
            Cmp::AtMost => value <= target.value,
            Cmp::Below => value < target.value,
        })
    }
}

/// The machine the run was made on.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub(crate) struct Machine {
    pub(crate) cores: usize,
    pub(crate) kernel: String,
    pub(crate) date: String,
}

#[derive(Serialize)]
struct JsonRow<'a> {
    scenario: &'a str,
    figure: Option<f64>,
    unmeasured: Option<&'a str>,
    unit: &'a str,
    floor_label: Option<&'a str>,
    floor: Option<f64>,
    floor_unit: Option<&'a str>,
    ratio: Option<f64>,
    target: Option<&'a str>,
    target_on: Option<Subject>,
    target_cmp: Option<Cmp>,
    target_value: Option<f64>,
    met: Option<bool>,
    note: Option<&'a str>,
}

#[derive(Serialize)]
struct JsonReport<'a> {
    mode: &'a str,
    machine: &'a Machine,
    rows: Vec<JsonRow<'a>>,
}

/// The report as JSON: `{ mode, machine: { cores, kernel, date }, rows: [...] }`.
pub(crate) fn to_json(mode: &str, machine: &Machine, rows: &[Row]) -> serde_json::Value {
    let rows = rows
        .iter()
        .map(|r| JsonRow {
            scenario: &r.scenario,
            figure: r.unmeasured.is_none().then_some(r.figure),
            unmeasured: r.unmeasured.as_deref(),
            unit: &r.unit,
            floor_label: r.floor.as_ref().map(|f| f.label.as_str()),
            floor: r.floor.as_ref().map(|f| f.value),
            floor_unit: r.floor.as_ref().map(|f| f.unit.as_str()),
            ratio: r.ratio(),
            target: r.target.as_ref().map(|t| t.text.as_str()),
            target_on: r.target.as_ref().map(|t| t.subject),
            target_cmp: r.target.as_ref().map(|t| t.cmp),
            target_value: r.target.as_ref().map(|t| t.value),
            met: r.met(),
            note: r.note.as_deref(),
        })
        .collect();
    serde_json::to_value(JsonReport {
        mode,
        machine,
        rows,
    })
    .unwrap_or(serde_json::Value::Null)
}

/// The report as a text table, one line per row, notes below.
pub(crate) fn table(rows: &[Row]) -> String {
    let header = [
        "scenario",
        "figure",
        "floor / peer",
        "ratio",
        "target",
        "met",
    ];
    let mut cells: Vec<[String; 6]> = vec![header.map(str::to_owned)];
    let mut notes = Vec::new();
    for row in rows {
        let mut scenario = row.scenario.clone();
        if let Some(note) = &row.note {
            notes.push(note.clone());
            scenario.push_str(&format!(" [{}]", notes.len()));
        }
        let floor = row.floor.as_ref().map_or_else(
            || "-".to_owned(),
            |f| format!("{} {}", f.label, with_unit(f.value, &f.unit)),
        );
        let ratio = row
            .ratio()
            .map_or_else(|| "-".to_owned(), |r| format!("{r:.2}×"));
        let target = row
            .target
            .as_ref()
            .map_or_else(|| "-".to_owned(), |t| t.text.clone());
        let met = match row.met() {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "-",
        };
        cells.push([
            scenario,
            row.unmeasured
                .clone()
                .unwrap_or_else(|| with_unit(row.figure, &row.unit)),
            floor,
            ratio,
            target,
            met.to_owned(),
        ]);
    }
    let mut widths = [0_usize; 6];
    for line in &cells {
        for (w, cell) in widths.iter_mut().zip(line) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for (i, line) in cells.iter().enumerate() {
        let mut text = String::new();
        for (col, (cell, w)) in line.iter().zip(widths).enumerate() {
            let pad = " ".repeat(w - cell.chars().count());
            // Text columns left-aligned, numbers right-aligned.
            if col == 0 || col == 2 || col == 4 {
                text.push_str(cell);
                text.push_str(&pad);
            } else {
                text.push_str(&pad);
                text.push_str(cell);
            }
            text.push_str("  ");
        }
        out.push_str(text.trim_end());
        out.push('\n');
        if i == 0 {
            let total: usize = widths.iter().sum::<usize>() + 2 * (widths.len() - 1);
            out.push_str(&"-".repeat(total));
            out.push('\n');
        }
    }
    for (i, note) in notes.iter().enumerate() {
        out.push_str(&format!("[{}] {note}\n", i + 1));
    }
    out
}

/// `value unit`, the value with a precision that fits its size.
pub(crate) fn with_unit(value: f64, unit: &str) -> String {
    format!("{} {unit}", num(value))
}

/// A number for people: thousands separated above 1,000, a few significant digits
/// below.
pub(crate) fn num(value: f64) -> String {
    if !value.is_finite() {
        return value.to_string();
    }
    let abs = value.abs();
    if abs >= 1000.0 {
        #[allow(clippy::cast_possible_truncation)]
        let n = value.round() as i64;
        let digits = n.unsigned_abs().to_string();
        let mut grouped = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                grouped.push(',');
            }
            grouped.push(c);
        }
        if n < 0 {
            grouped.insert(0, '-');
        }
        grouped
    } else if abs >= 100.0 || abs == abs.trunc() {
        format!("{value:.0}")
    } else if abs >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

/// The `p`-th percentile (0–100) of `samples`, nearest-rank; `None` when empty. Sorts
/// `samples` in place.
pub(crate) fn percentile(samples: &mut [f64], p: f64) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_by(f64::total_cmp);
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    let rank = ((p.clamp(0.0, 100.0) / 100.0) * samples.len() as f64).ceil() as usize;
    Some(samples[rank.clamp(1, samples.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_is_nearest_rank() {
        let mut v: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        assert_eq!(percentile(&mut v, 50.0), Some(50.0));
        assert_eq!(percentile(&mut v, 99.0), Some(99.0));
        assert_eq!(percentile(&mut v, 100.0), Some(100.0));
        assert_eq!(percentile(&mut v, 0.0), Some(1.0));
        let mut one = vec![7.0];
        assert_eq!(percentile(&mut one, 99.0), Some(7.0));
        let mut three = vec![3.0, 1.0, 2.0];
        assert_eq!(percentile(&mut three, 50.0), Some(2.0));
        assert_eq!(percentile(&mut [], 50.0), None);
    }

    #[test]
    fn numbers_are_grouped_and_rounded() {
        assert_eq!(num(1_234_567.4), "1,234,567");
        assert_eq!(num(1000.0), "1,000");
        assert_eq!(num(999.6), "1000");
        assert_eq!(num(71.44), "71.4");
        assert_eq!(num(2.0), "2");
        assert_eq!(num(0.456), "0.46");
        assert_eq!(num(-12_345.0), "-12,345");
    }

    #[test]
    fn met_follows_the_target_subject_and_direction() {
        let row = Row::new("x", 1_000_000.0, "ops/s").floor("HA", 71_400.0, "ops/s");
        assert!(row.met().is_none());
        let at_least = row.clone().target(Target::ratio_at_least(15.0));
        assert_eq!(at_least.met(), Some(false)); // 14.0×
        let at_least = row.clone().target(Target::ratio_at_least(14.0));
        assert_eq!(at_least.met(), Some(true));
        let latency = Row::new("p99", 2.5, "ms").target(Target::figure_at_most(2.0, "ms"));
        assert_eq!(latency.met(), Some(false));
        let below = Target::figure_below(3.0, "%");
        assert_eq!(below.text, "< 3%");
        let at = Row::new("d", 3.0, "%").target(below.clone());
        assert_eq!(at.met(), Some(false));
        let under = Row::new("d", 2.9, "%").target(below);
        assert_eq!(under.met(), Some(true));
        let no_floor = Row::new("r", 1.0, "µs").target(Target::ratio_at_most(4.0));
        assert_eq!(no_floor.met(), None);
    }

    #[test]
    fn table_has_a_header_one_line_per_row_and_numbered_notes() {
        let rows = vec![
            Row::new("in-process validation", 1_500_000.0, "ops/s")
                .floor("HA", 71_400.0, "ops/s")
                .target(Target::ratio_at_least(15.0)),
            Row::new("fan-out", 12.5, "ms")
                .target(Target::figure_at_most(100.0, "ms"))
                .note("1,000 connections"),
        ];
        let text = table(&rows);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5, "{text}");
        assert!(lines[0].starts_with("scenario"));
        assert!(lines[1].chars().all(|c| c == '-'));
        assert!(lines[2].starts_with("in-process validation "));
        assert!(lines[2].contains("1,500,000 ops/s"));
        assert!(lines[2].contains("HA 71,400 ops/s"));
        assert!(lines[2].contains("21.01×"));
        assert!(lines[2].contains("≥ 15×"));
        assert!(lines[2].ends_with("yes"));
        assert!(lines[3].starts_with("fan-out [1]"));
        assert!(lines[3].contains("≤ 100 ms"));
        assert_eq!(lines[4], "[1] 1,000 connections");
        // The columns line up: the last column ends at the same place on every row.
        assert_eq!(lines[2].chars().count(), lines[0].chars().count());
        assert_eq!(lines[3].chars().count(), lines[0].chars().count());
    }

    #[test]
    fn an_unmeasured_row_says_so_and_meets_nothing() {
        let row = Row::unmeasured("Home Assistant validation", "reference, not measured")
            .floor("HA", 71_400.0, "ops/s")
            .target(Target::ratio_at_least(15.0));
        assert_eq!(row.ratio(), None);
        assert_eq!(row.met(), None);
        let text = table(std::slice::from_ref(&row));
        let line = text.lines().nth(2).unwrap_or_default();
        assert!(line.contains("reference, not measured"), "{text}");
        assert!(!line.contains("NaN"), "{text}");
        let machine = Machine {
            cores: 1,
            kernel: "k".into(),
            date: "d".into(),
        };
        let json = to_json("full", &machine, &[row]);
        assert!(json["rows"][0]["figure"].is_null());
        assert_eq!(json["rows"][0]["unmeasured"], "reference, not measured");
        assert!(json["rows"][0]["met"].is_null());
    }

    #[test]
    fn json_has_machine_info_and_numeric_fields() {
        let machine = Machine {
            cores: 2,
            kernel: "Linux version 6.1".into(),
            date: "2026-11-23T15:00:00Z".into(),
        };
        let rows = vec![
            Row::new("socket floor", 75.0, "µs"),
            Row::new("one at a time", 12_000.0, "ops/s")
                .floor("ping-pong", 13_000.0, "ops/s")
                .target(Target::ratio_at_least(0.9)),
        ];
        let json = to_json("quick", &machine, &rows);
        assert_eq!(json["mode"], "quick");
        assert_eq!(json["machine"]["cores"], 2);
        assert_eq!(json["machine"]["kernel"], "Linux version 6.1");
        let rows = json["rows"].as_array().map(Vec::len);
        assert_eq!(rows, Some(2));
        let first = &json["rows"][0];
        assert_eq!(first["figure"], 75.0);
        assert!(first["floor"].is_null());
        assert!(first["met"].is_null());
        let second = &json["rows"][1];
        assert_eq!(second["scenario"], "one at a time");
        assert_eq!(second["floor"], 13_000.0);
        let ratio = second["ratio"].as_f64().unwrap_or_default();
        assert!((ratio - 12_000.0 / 13_000.0).abs() < 1e-9);
        assert_eq!(second["target_on"], "ratio");
        assert_eq!(second["target_cmp"], ">=");
        assert_eq!(second["target_value"], 0.9);
        assert_eq!(second["met"], true);
    }
}
