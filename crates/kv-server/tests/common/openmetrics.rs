//! A checker of the OpenMetrics text format (what `/metrics` serves), strict enough to
//! catch what a scraper would reject: every sample belongs to the family declared before
//! it, with the suffix its type allows; names and labels are well formed; values are
//! numbers; histogram buckets are cumulative and end in `+Inf` equal to `_count`; the
//! text ends with `# EOF`.

use std::collections::BTreeMap;

/// A family as declared by its `# TYPE` line.
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

/// Checks `text`; the error says which line is wrong and why.
pub fn check(text: &str) -> Result<Exposition, String> {
    let mut out = Exposition::default();
    let mut current: Option<Family> = None;
    let mut buckets = Buckets::default();
    let lines: Vec<&str> = text.split('\n').collect();
    if lines.iter().rev().nth(1) != Some(&"# EOF") || lines.last() != Some(&"") {
        return Err("the text does not end with `# EOF\\n`".into());
    }
    for (n, line) in lines[..lines.len() - 2].iter().enumerate() {
        let fail = |why: &str| format!("line {}: {why}: {line:?}", n + 1);
        if let Some(rest) = line.strip_prefix("# ") {
            if rest.starts_with("HELP ") {
                buckets.finish(current.as_ref()).map_err(|w| fail(&w))?;
            }
            descriptor(rest, &mut current, &mut out).map_err(|w| fail(&w))?;
        } else {
            let family = current
                .as_ref()
                .ok_or_else(|| fail("a sample before any # TYPE"))?;
            let (key, name, value) = sample(line).map_err(|w| fail(&w))?;
            suffix_fits(family, &name, &key, value, &mut buckets).map_err(|w| fail(&w))?;
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

/// `HELP`, `TYPE` or `UNIT` (the part after `# `).
fn descriptor(
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
            if !["counter", "gauge", "histogram", "info", "unknown"].contains(&value) {
                return Err(format!("unknown type {value}"));
            }
            family.kind = value.into();
            if out.families.insert(name.into(), family.clone()).is_some() {
                return Err("a family declared twice".into());
            }
            Ok(())
        }
        "UNIT"
            if current
                .as_ref()
                .is_some_and(|f| f.name == name && name.ends_with(&format!("_{value}"))) =>
        {
            Ok(())
        }
        _ => Err("not HELP, TYPE or a UNIT that ends its family's name".into()),
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

/// The sample `name` is one its family's type allows; histogram buckets add up.
fn suffix_fits(
    family: &Family,
    name: &str,
    key: &str,
    value: f64,
    buckets: &mut Buckets,
) -> Result<(), String> {
    let suffix = name
        .strip_prefix(family.name.as_str())
        .ok_or("a sample of another family")?;
    let allowed: &[&str] = match family.kind.as_str() {
        "counter" => &["_total", "_created"],
        "gauge" | "unknown" => &[""],
        "info" => &["_info"],
        "histogram" => &["_bucket", "_sum", "_count", "_created"],
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

/// The classic Prometheus text format of `text`, for `promtool check metrics`, which
/// reads only that: an OpenMetrics counter family `x` (samples `x_total`) is declared as
/// `x_total` there. Nothing else changes (`# UNIT` and `# EOF` are comments to it).
pub fn to_classic(text: &str, exposition: &Exposition) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let rewritten = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            let family = exposition.families.get(name)?;
            (family.kind == "counter").then(|| format!("{prefix}{name}_total {tail}"))
        });
        out.push_str(rewritten.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}
