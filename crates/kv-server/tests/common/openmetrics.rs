//! A checker of what `/metrics` serves, in either of its formats (SPEC §11): OpenMetrics
//! 1.0 and the Prometheus text format 0.0.4. Strict enough to catch what a scraper would
//! reject, and stricter than the formats where our encoder has no reason to differ: every
//! family has a `# HELP` then a `# TYPE`, and every sample belongs to the family declared
//! before it, with the suffix its type allows; names and labels are well formed; values
//! are numbers; histogram buckets are cumulative and end in `+Inf` equal to `_count`.
//! OpenMetrics ends with `# EOF`, and a counter family `x` has samples `x_total`; the text
//! format has no `# EOF` nor `# UNIT` (nor any other comment), and its counter family is
//! named `x_total` like its samples, so a text that is OpenMetrics fails as text and the
//! other way round.

use std::collections::BTreeMap;

/// The two formats `/metrics` answers in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0 (`application/openmetrics-text`).
    OpenMetrics,
    /// The Prometheus text format 0.0.4 (`text/plain; version=0.0.4`).
    Text,
}

/// A family as declared by its `# TYPE` line (its name as written there: `x` for an
/// OpenMetrics counter, `x_total` for a text-format one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Family {
    pub name: String,
    pub kind: String,
    pub help: bool,
}

/// What a valid exposition holds: families by name, and every sample's value by its
/// name and labels as written (`kv_commands_total{verb="get"}`).
#[derive(Debug, Default)]
pub struct Exposition {
    pub families: BTreeMap<String, Family>,
    pub samples: BTreeMap<String, f64>,
}

impl Exposition {
    /// The value of the sample written `key`; panics if there is none.
    pub fn value(&self, key: &str) -> f64 {
        *self
            .samples
            .get(key)
            .unwrap_or_else(|| panic!("no sample {key} in {:#?}", self.samples.keys()))
    }
}

/// Checks `text` in the format it is in: OpenMetrics if it ends with `# EOF`, else the
/// text format. Where the format is known (from the reply's content type), use
/// [`check_as`], which does not guess.
pub fn check(text: &str) -> Result<Exposition, String> {
    let format = if text.ends_with("\n# EOF\n") {
        Format::OpenMetrics
    } else {
        Format::Text
    };
    check_as(text, format)
}

/// Checks `text` as `format`; the error says which line is wrong and why.
pub fn check_as(text: &str, format: Format) -> Result<Exposition, String> {
    let mut out = Exposition::default();
    let mut current: Option<Family> = None;
    let mut buckets = Buckets::default();
    let mut lines: Vec<&str> = text.split('\n').collect();
    if lines.len() < 2 || lines.pop() != Some("") {
        return Err("the text is empty or does not end with a newline".into());
    }
    if format == Format::OpenMetrics && lines.pop() != Some("# EOF") {
        return Err("the text does not end with `# EOF\\n`".into());
    }
    for (n, line) in lines.iter().enumerate() {
        let fail = |why: &str| format!("line {}: {why}: {line:?}", n + 1);
        if let Some(rest) = line.strip_prefix("# ") {
            if rest.starts_with("HELP ") {
                buckets.finish(current.as_ref()).map_err(|w| fail(&w))?;
            }
            descriptor(format, rest, &mut current, &mut out).map_err(|w| fail(&w))?;
        } else {
            let family = current
                .as_ref()
                .ok_or_else(|| fail("a sample before any # TYPE"))?;
            let (key, name, value) = sample(line).map_err(|w| fail(&w))?;
            suffix_fits(format, family, &name, &key, value, &mut buckets).map_err(|w| fail(&w))?;
            if out.samples.insert(key, value).is_some() {
                return Err(fail("a sample written twice"));
            }
        }
    }
    buckets.finish(current.as_ref())?;
    Ok(out)
}

/// A histogram's samples so far: its buckets (cumulative counts, in order), whether the
/// last was `+Inf`, and its `_count`.
#[derive(Debug, Default)]
struct Buckets {
    counts: Vec<f64>,
    infinite: bool,
    count: Option<f64>,
}

impl Buckets {
    /// At a family's end: a histogram has buckets, the last `+Inf` and equal to `_count`.
    fn finish(&mut self, family: Option<&Family>) -> Result<(), String> {
        let done = std::mem::take(self);
        if family.is_none_or(|f| f.kind != "histogram") {
            return Ok(());
        }
        if done.counts.len() < 2 || !done.infinite {
            return Err("a histogram needs buckets, the last one le=\"+Inf\"".into());
        }
        if done.count != done.counts.last().copied() {
            return Err("a histogram's _count differs from its +Inf bucket".into());
        }
        Ok(())
    }
}

/// `HELP`, `TYPE` or (OpenMetrics only) `UNIT`: the part after `# `.
fn descriptor(
    format: Format,
    rest: &str,
    current: &mut Option<Family>,
    out: &mut Exposition,
) -> Result<(), String> {
    let mut words = rest.splitn(3, ' ');
    let (keyword, name) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let value = words.next().unwrap_or("");
    check_name(name)?;
    match keyword {
        "HELP" => {
            *current = Some(Family {
                name: name.into(),
                kind: String::new(),
                help: !value.is_empty(),
            });
            Ok(())
        }
        "TYPE" => {
            let family = current
                .as_mut()
                .filter(|f| f.name == name)
                .ok_or("TYPE without its HELP")?;
            let types: &[&str] = match format {
                Format::OpenMetrics => &["counter", "gauge", "histogram", "info", "unknown"],
                Format::Text => &["counter", "gauge", "histogram", "summary", "untyped"],
            };
            if !types.contains(&value) {
                return Err(format!("type {value} is not one of {format:?}"));
            }
            // The text format names a counter's family after its samples (client_golang,
            // promtool): `x_total`, not OpenMetrics' `x`.
            if format == Format::Text && value == "counter" && !name.ends_with("_total") {
                return Err("a counter family not named ..._total".into());
            }
            family.kind = value.into();
            if out.families.insert(name.into(), family.clone()).is_some() {
                return Err("a family declared twice".into());
            }
            Ok(())
        }
        "UNIT"
            if format == Format::OpenMetrics
                && current
                    .as_ref()
                    .is_some_and(|f| f.name == name && name.ends_with(&format!("_{value}"))) =>
        {
            Ok(())
        }
        _ => Err("not HELP, TYPE or (OpenMetrics) a UNIT that ends its family's name".into()),
    }
}

/// `name{labels} value` → (`name{labels}`, name, value).
fn sample(line: &str) -> Result<(String, String, f64), String> {
    let (key, value) = line.rsplit_once(' ').ok_or("no value")?;
    let value: f64 = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().map_err(|_| format!("{v} is not a number"))?,
    };
    let name = match key.split_once('{') {
        Some((name, labels)) => {
            let labels = labels.strip_suffix('}').ok_or("labels not closed")?;
            for label in labels.split(',') {
                let (k, v) = label.split_once('=').ok_or("a label without =")?;
                check_name(k)?;
                if !(v.len() >= 2 && v.starts_with('"') && v.ends_with('"')) {
                    return Err(format!("label value {v} not quoted"));
                }
            }
            name
        }
        None => key,
    };
    check_name(name)?;
    Ok((key.to_string(), name.to_string(), value))
}

/// The sample `name` is one its family's type allows in `format`; histogram buckets add up.
fn suffix_fits(
    format: Format,
    family: &Family,
    name: &str,
    key: &str,
    value: f64,
    buckets: &mut Buckets,
) -> Result<(), String> {
    let suffix = name
        .strip_prefix(family.name.as_str())
        .ok_or("a sample of another family")?;
    let allowed: &[&str] = match (format, family.kind.as_str()) {
        (Format::OpenMetrics, "counter") => &["_total", "_created"],
        (Format::OpenMetrics, "gauge" | "unknown") => &[""],
        (Format::OpenMetrics, "info") => &["_info"],
        (Format::OpenMetrics, "histogram") => &["_bucket", "_sum", "_count", "_created"],
        (Format::Text, "counter" | "gauge" | "untyped") => &[""],
        (Format::Text, "histogram") => &["_bucket", "_sum", "_count"],
        (Format::Text, "summary") => &["", "_sum", "_count"],
        _ => &[],
    };
    if !allowed.contains(&suffix) {
        return Err(format!(
            "suffix {suffix:?} is not one a {} has",
            family.kind
        ));
    }
    if family.kind == "counter" && value < 0.0 {
        return Err("a negative counter".into());
    }
    match suffix {
        "_bucket" => {
            if buckets.counts.last().is_some_and(|last| value < *last) || buckets.infinite {
                return Err("buckets not cumulative, or after +Inf".into());
            }
            buckets.counts.push(value);
            buckets.infinite = key.contains("le=\"+Inf\"");
        }
        "_count" => buckets.count = Some(value),
        _ => {}
    }
    Ok(())
}

fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':');
    if first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
        Ok(())
    } else {
        Err(format!("{name:?} is not a metric or label name"))
    }
}
