//! Which format `/metrics` answers in (SPEC §11): OpenMetrics 1.0 when the `Accept` header
//! asks for `application/openmetrics-text`, otherwise the Prometheus text format 0.0.4.
//!
//! The rule is that of Prometheus' Go client (`expfmt.NegotiateIncludingOpenMetrics` in
//! `prometheus/common`, which `promhttp` uses when OpenMetrics is enabled), less the
//! protobuf formats, which this server does not serve: the header's entries are taken from
//! the highest `q` down, and the first one that names a format served decides it:
//!
//! - `text/plain` without a `version`, or with `version=0.0.4`: the text format;
//! - `application/openmetrics-text` without a `version`, or with `0.0.1` or `1.0.0`: OpenMetrics;
//! - anything else (`*/*`, `text/*`, `text/html`, another version, protobuf) names none,
//!   and the next entry is tried. When none is left: the text format.
//!
//! So Prometheus (`application/openmetrics-text;version=1.0.0,…,text/plain;version=0.0.4;
//! q=0.5,*/*;q=0.1`) gets OpenMetrics, and curl (`*/*`), a browser or no header at all get
//! the text format, which `promtool check metrics` and older tools read.
//!
//! Where the Go client is looser than RFC 9110 this follows the RFC: media types and
//! parameter names are matched without regard to case, a quoted parameter value is
//! unquoted, an entry with `q=0` ("not acceptable") or a malformed `q` is ignored (Go
//! reads a malformed `q` as 0 and still considers it, last), entries of equal `q` keep the
//! header's order (Go's sort is not stable), and several `Accept` headers are read as one
//! list (Go reads only the first). An OpenMetrics reply always says `version=1.0.0`, the
//! version prometheus-client writes, where Go echoes `0.0.1` when that (or no version) was
//! asked for: both versions are read alike by Prometheus, which looks only at the media
//! type. The Go client also adds an `escaping` parameter for names outside the classic
//! character set; every name here is inside it, so none is needed.

use prometheus_client::encoding::prometheus_text;

/// A format `/metrics` can answer in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0 (`prometheus_client::encoding::text`).
    OpenMetrics,
    /// The Prometheus text format 0.0.4 (`prometheus_client::encoding::prometheus_text`).
    Text,
}

impl Format {
    /// The `Content-Type` of a reply in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Text => prometheus_text::CONTENT_TYPE,
        }
    }
}

/// The format for a request whose `Accept` headers are `accept` (none: the text format).
pub fn negotiate<'a>(accept: impl IntoIterator<Item = &'a str>) -> Format {
    let mut entries: Vec<Entry> = accept
        .into_iter()
        .flat_map(|header| header.split(','))
        .filter_map(Entry::parse)
        .filter(|entry| entry.q > 0)
        .collect();
    // Stable: entries of equal q stay in the header's order.
    entries.sort_by_key(|entry| std::cmp::Reverse(entry.q));
    entries
        .iter()
        .find_map(|entry| entry.format)
        .unwrap_or(Format::Text)
}

/// One entry of an `Accept` header: the format it names, if one served, and its weight.
#[derive(Debug)]
struct Entry {
    format: Option<Format>,
    /// `q` in thousandths (RFC 9110 allows three decimals): 0 ..= 1000.
    q: u16,
}

impl Entry {
    /// `type/subtype *( ";" name=value )`; `None` if `q` is malformed or the entry is empty.
    fn parse(entry: &str) -> Option<Entry> {
        let mut parts = entry.split(';');
        let media = parts.next()?.trim();
        if media.is_empty() {
            return None;
        }
        let (mut version, mut q) = (None, 1000);
        for param in parts {
            let Some((name, value)) = param.split_once('=') else {
                continue;
            };
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            match name.trim() {
                n if n.eq_ignore_ascii_case("q") => q = weight(value)?,
                n if n.eq_ignore_ascii_case("version") => version = Some(value),
                _ => {}
            }
        }
        let is = |served: &str| media.eq_ignore_ascii_case(served);
        let format = if is("text/plain") && matches!(version, None | Some("" | "0.0.4")) {
            Some(Format::Text)
        } else if is("application/openmetrics-text")
            && matches!(version, None | Some("" | "0.0.1" | "1.0.0"))
        {
            Some(Format::OpenMetrics)
        } else {
            None
        };
        Some(Entry { format, q })
    }
}

/// A `q` value in thousandths, if it is a number from 0 to 1.
fn weight(value: &str) -> Option<u16> {
    let q: f64 = value.parse().ok()?;
    // Rounds to the RFC's three decimals; the cast cannot truncate (0 ..= 1000).
    (0.0..=1.0)
        .contains(&q)
        .then(|| (q * 1000.0).round() as u16)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    use Format::{OpenMetrics, Text};

    /// What Prometheus 2 sends (releases before `scrape_protocols`).
    const PROMETHEUS_2: &str = "application/openmetrics-text;version=1.0.0,\
        application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    /// What Prometheus 3.x sends by default.
    const PROMETHEUS_3: &str = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,\
        application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,\
        text/plain;version=0.0.4;q=0.2,*/*;q=0.1";
    /// Prometheus 3.x with `scrape_protocols` putting protobuf first (not served here).
    const PROMETHEUS_PROTO_FIRST: &str = "application/vnd.google.protobuf;\
        proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.6,\
        application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,\
        application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,\
        text/plain;version=0.0.4;q=0.2,*/*;q=0.1";
    /// Protobuf first, then only the text format.
    const PROTO_THEN_TEXT: &str = "application/vnd.google.protobuf;\
        proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.3";

    fn one(header: &str) -> Format {
        negotiate([header])
    }

    #[test]
    fn accept_headers_choose_the_format_as_the_go_client_does() {
        let table: &[(&str, Format)] = &[
            // Scrapers.
            (PROMETHEUS_2, OpenMetrics),
            (PROMETHEUS_3, OpenMetrics),
            (PROMETHEUS_PROTO_FIRST, OpenMetrics),
            (PROTO_THEN_TEXT, Text),
            ("application/openmetrics-text", OpenMetrics),
            ("application/openmetrics-text; version=1.0.0", OpenMetrics),
            ("application/openmetrics-text;version=0.0.1", OpenMetrics),
            (
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                OpenMetrics,
            ),
            (
                "text/plain;version=0.0.4;q=0.5,application/openmetrics-text",
                OpenMetrics,
            ),
            // People and tools.
            ("", Text),
            ("*/*", Text),
            ("*", Text),
            ("text/plain", Text),
            ("text/plain; version=0.0.4", Text),
            ("text/plain;charset=utf-8", Text),
            ("text/*", Text),
            (
                "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
                Text,
            ),
            ("application/json", Text),
            // Versions not served: the entry names nothing, the next one decides.
            ("application/openmetrics-text;version=2.0.0", Text),
            (
                "application/openmetrics-text;version=2.0.0,application/openmetrics-text;q=0.1",
                OpenMetrics,
            ),
            ("text/plain;version=1.0.0", Text),
            (
                "text/plain;version=1.0.0,application/openmetrics-text;q=0.2",
                OpenMetrics,
            ),
            // The highest q decides, whatever the order; equal q: the header's order.
            (
                "text/plain;q=0.5,application/openmetrics-text;q=0.6",
                OpenMetrics,
            ),
            ("application/openmetrics-text;q=0.5,text/plain;q=0.6", Text),
            (
                "application/openmetrics-text;q=0.5,text/plain;q=0.5",
                OpenMetrics,
            ),
            ("text/plain;q=0.5,application/openmetrics-text;q=0.5", Text),
            ("text/plain,application/openmetrics-text", Text),
            // A wildcard names no format, even first: the entries after it decide.
            ("*/*,application/openmetrics-text;q=0.2", OpenMetrics),
            // q=0 is "not acceptable"; a malformed q drops its entry.
            ("application/openmetrics-text;q=0", Text),
            (
                "application/openmetrics-text;q=0.000,text/plain;q=0.001",
                Text,
            ),
            ("application/openmetrics-text;q=2", Text),
            ("application/openmetrics-text;q=high,text/plain;q=0.1", Text),
            ("application/openmetrics-text;q=0.001", OpenMetrics),
            // Case, spaces and quotes.
            (
                "Application/OpenMetrics-Text; Version=1.0.0; Q=1",
                OpenMetrics,
            ),
            ("APPLICATION/OPENMETRICS-TEXT", OpenMetrics),
            (
                "  application/openmetrics-text ;  version = \"1.0.0\" ; q = 0.9 ",
                OpenMetrics,
            ),
            (
                "TEXT/PLAIN;VERSION=0.0.4,application/openmetrics-text;q=0.1",
                Text,
            ),
            // Malformed entries are skipped, not fatal.
            (",,;,application/openmetrics-text;;version", OpenMetrics),
            ("application/openmetrics-text;version", OpenMetrics),
            ("garbage", Text),
        ];
        for (header, want) in table {
            assert_eq!(one(header), *want, "Accept: {header}");
        }
    }

    #[test]
    fn no_header_means_the_text_format_and_several_headers_are_one_list() {
        assert_eq!(negotiate([]), Text);
        assert_eq!(
            negotiate(["*/*", "application/openmetrics-text"]),
            OpenMetrics
        );
        assert_eq!(
            negotiate(["text/plain;q=0.1", "application/openmetrics-text;q=0.2"]),
            OpenMetrics
        );
    }

    #[test]
    fn content_types_are_those_of_the_go_client() {
        assert_eq!(
            Text.content_type(),
            "text/plain; version=0.0.4; charset=utf-8"
        );
        assert_eq!(
            OpenMetrics.content_type(),
            "application/openmetrics-text; version=1.0.0; charset=utf-8"
        );
    }

    /// One entry (no comma): naming a served format, naming none, or junk; with a q or not.
    fn entry() -> impl Strategy<Value = String> {
        let media = prop_oneof![
            Just("application/openmetrics-text".to_string()),
            Just("application/openmetrics-text;version=1.0.0".to_string()),
            Just("application/openmetrics-text;version=0.0.1".to_string()),
            Just("application/openmetrics-text;version=2.0.0".to_string()),
            Just("text/plain".to_string()),
            Just("text/plain;version=0.0.4".to_string()),
            Just("text/plain;version=1.0.0".to_string()),
            Just("*/*".to_string()),
            Just("text/html".to_string()),
            "[ -+--~]{0,20}",
        ];
        let q = prop_oneof![
            Just(String::new()),
            (0u16..=1000).prop_map(|q| format!(";q={}", f64::from(q) / 1000.0)),
        ];
        (media, q).prop_map(|(media, q)| media + &q)
    }

    proptest! {
        /// Any bytes a client sends: a format, never a panic; OpenMetrics only if asked for.
        #[test]
        fn any_header_gets_a_format_and_openmetrics_only_if_named(header in "[ -~]{0,200}") {
            let format = one(&header);
            if !header.to_ascii_lowercase().contains("application/openmetrics-text") {
                prop_assert_eq!(format, Text);
            }
        }

        /// Media types and parameter names are case-insensitive (every value here is too).
        #[test]
        fn case_does_not_matter(entries in proptest::collection::vec(entry(), 0..6)) {
            let header = entries.join(",");
            prop_assert_eq!(one(&header), one(&header.to_ascii_uppercase()));
            prop_assert_eq!(one(&header), one(&header.to_ascii_lowercase()));
        }

        /// Only q and the order of equal q count: sorting the entries by q (stably)
        /// changes nothing.
        #[test]
        fn only_q_and_then_order_count(entries in proptest::collection::vec(entry(), 0..6)) {
            let mut sorted = entries.clone();
            sorted.sort_by_key(|e| std::cmp::Reverse(Entry::parse(e).map_or(0, |p| p.q)));
            prop_assert_eq!(one(&entries.join(",")), one(&sorted.join(",")));
        }

        /// An entry at full weight ahead of the others decides, whatever follows.
        #[test]
        fn a_first_entry_at_full_weight_decides(
            entries in proptest::collection::vec(entry(), 0..6),
        ) {
            let rest = entries.join(",");
            prop_assert_eq!(one(&format!("application/openmetrics-text,{rest}")), OpenMetrics);
            prop_assert_eq!(one(&format!("text/plain;q=1,{rest}")), Text);
        }
    }
}
