//! [`Format`]: which text exposition a scraper gets, chosen from its `Accept` header.

/// The two text expositions [`render`](crate::render) writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// The Prometheus text format, version 0.0.4 ([`CONTENT_TYPE`]): what
    /// every scraper reads, and what `promtool check metrics` checks.
    #[default]
    Prometheus,
    /// OpenMetrics 1.0.0 text ([`OPENMETRICS_CONTENT_TYPE`]): counter families named without
    /// `_total`, units declared, a closing `# EOF`. Prometheus asks for it first.
    OpenMetrics,
}

/// The `Content-Type` of [`render`](crate::render)'s output: the Prometheus text format,
/// version 0.0.4.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The `Content-Type` of [`Format::OpenMetrics`].
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

impl Format {
    /// The `Content-Type` header value of this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => CONTENT_TYPE,
            Format::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
        }
    }

    /// The format to answer a request with this `Accept` header: OpenMetrics when the header
    /// lists `application/openmetrics-text` (version 1.0.0 or unversioned) with a quality at
    /// least as high as any it gives the Prometheus text format (`text/plain` version 0.0.4 or
    /// unversioned, `text/*`, `*/*`); the Prometheus text format otherwise, including when the
    /// header is missing, malformed or asks for neither (a scraper always gets an answer it can
    /// most likely read, never a 406).
    ///
    /// ```
    /// use telemetry_prometheus::Format;
    ///
    /// // What Prometheus 2.x sends.
    /// let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
    ///                   version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    /// assert_eq!(Format::negotiate(Some(prometheus)), Format::OpenMetrics);
    /// assert_eq!(Format::negotiate(Some("text/plain")), Format::Prometheus);
    /// assert_eq!(Format::negotiate(None), Format::Prometheus);
    /// ```
    pub fn negotiate(accept: Option<&str>) -> Format {
        let Some(accept) = accept else {
            return Format::Prometheus;
        };
        let mut openmetrics: f32 = 0.0;
        let mut text: f32 = 0.0;
        for range in accept.split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or("").to_ascii_lowercase();
            let mut q: f32 = 1.0;
            let mut version: Option<String> = None;
            for param in parts {
                let Some((key, value)) = param.split_once('=') else {
                    continue;
                };
                let value = value.trim().trim_matches('"');
                match key.trim().to_ascii_lowercase().as_str() {
                    "q" => {
                        q = value
                            .parse::<f32>()
                            .ok()
                            .filter(|q| (0.0..=1.0).contains(q))
                            .unwrap_or(0.0)
                    }
                    "version" => version = Some(value.to_owned()),
                    _ => {}
                }
            }
            let version = version.as_deref();
            match media.as_str() {
                "application/openmetrics-text" if matches!(version, None | Some("1.0.0")) => {
                    openmetrics = openmetrics.max(q);
                }
                "text/plain" if matches!(version, None | Some("0.0.4")) => text = text.max(q),
                "text/*" | "*/*" => text = text.max(q),
                _ => {}
            }
        }
        if openmetrics > 0.0 && openmetrics >= text {
            Format::OpenMetrics
        } else {
            Format::Prometheus
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openmetrics_needs_the_higher_or_equal_quality() {
        let cases = [
            ("application/openmetrics-text", Format::OpenMetrics),
            (
                "application/openmetrics-text; version=1.0.0",
                Format::OpenMetrics,
            ),
            (
                "Application/OpenMetrics-Text;Version=\"1.0.0\";q=0.9, text/plain;q=0.5",
                Format::OpenMetrics,
            ),
            (
                "application/openmetrics-text, text/plain",
                Format::OpenMetrics,
            ),
            (
                "application/openmetrics-text;q=0.5, text/plain",
                Format::Prometheus,
            ),
            (
                "application/openmetrics-text;q=0.5, */*",
                Format::Prometheus,
            ),
            ("application/openmetrics-text;q=0", Format::Prometheus),
            // A version we do not write is not an offer we can take.
            (
                "application/openmetrics-text;version=0.0.1",
                Format::Prometheus,
            ),
            (
                "application/openmetrics-text;version=2.0.0, text/plain;q=0.1",
                Format::Prometheus,
            ),
            // Nonsense qualities count as refusals, not as preferences.
            ("application/openmetrics-text;q=7", Format::Prometheus),
            ("application/openmetrics-text;q=abc", Format::Prometheus),
            ("text/plain;version=0.0.4", Format::Prometheus),
            ("application/json", Format::Prometheus),
            ("", Format::Prometheus),
            (";;,,;=;", Format::Prometheus),
        ];
        for (accept, want) in cases {
            assert_eq!(Format::negotiate(Some(accept)), want, "Accept: {accept}");
        }
    }

    #[test]
    fn content_types_name_their_format() {
        assert!(Format::Prometheus.content_type().contains("version=0.0.4"));
        assert!(
            Format::OpenMetrics
                .content_type()
                .starts_with("application/openmetrics-text")
        );
    }
}
