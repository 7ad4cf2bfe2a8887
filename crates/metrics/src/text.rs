//! The Prometheus text format exactly as TorchServe writes it (its Java client, simpleclient 0.9):
//! labels in the order the metric declares them and each followed by a comma
//! (`Requests2XX{Level="Host",Hostname="vm",} 3.0`), numbers as Java prints doubles (`3.0`,
//! `1.0E-4`), histogram buckets then `_count` then `_sum`. Prometheus reads either format; scripts
//! and tests that match TorchServe's lines with regular expressions read only this one.

use std::collections::HashMap;
use std::fmt::Write as _;

use prometheus::core::Collector;
use prometheus::proto::{LabelPair, Metric, MetricFamily, MetricType};

/// Each family's label names in declaration order; the gathered samples carry them sorted.
#[derive(Debug, Clone, Default)]
pub struct LabelOrder(HashMap<String, Vec<String>>);

impl LabelOrder {
    /// Remembers the declared label order of `collector`'s families.
    pub fn add(&mut self, collector: &dyn Collector) {
        for desc in collector.desc() {
            self.0.insert(desc.fq_name.clone(), desc.variable_labels.clone());
        }
    }

    /// Adds `other`'s families.
    pub fn extend(&mut self, other: &Self) {
        self.0.extend(other.0.iter().map(|(k, v)| (k.clone(), v.clone())));
    }

    fn of(&self, family: &str) -> &[String] {
        self.0.get(family).map_or(&[], Vec::as_slice)
    }
}

/// Renders `families`. `wanted` keeps only the named families, and for a histogram also takes the
/// names of its samples (`h_bucket`, `h_count`, `h_sum`) to keep just those lines, as TorchServe's
/// `name[]` does; empty keeps everything.
pub fn render(families: &[MetricFamily], order: &LabelOrder, wanted: &[String]) -> String {
    let mut out = String::new();
    for family in families {
        let name = family.name();
        let whole = wanted.is_empty() || wanted.iter().any(|w| w == name);
        let sample_wanted = |suffix: &str| {
            whole
                || wanted.iter().any(|w| w.strip_prefix(name) == Some(suffix) && !suffix.is_empty())
        };
        let kind = family.get_field_type();
        let parts = match kind {
            MetricType::HISTOGRAM => ["_bucket", "_count", "_sum"].map(&sample_wanted),
            _ => [whole, false, false],
        };
        if !parts.iter().any(|p| *p) {
            continue;
        }
        let _ = writeln!(out, "# HELP {name} {}", escape(family.help(), false));
        let kind_name = match kind {
            MetricType::COUNTER => "counter",
            MetricType::GAUGE => "gauge",
            MetricType::HISTOGRAM => "histogram",
            MetricType::SUMMARY => "summary",
            MetricType::UNTYPED => "untyped",
        };
        let _ = writeln!(out, "# TYPE {name} {kind_name}");
        let labels = order.of(name);
        for metric in family.get_metric() {
            let pairs = ordered(metric.get_label(), labels);
            match kind {
                MetricType::COUNTER => {
                    sample(&mut out, name, &pairs, None, metric.get_counter().get_value());
                }
                MetricType::GAUGE => {
                    sample(&mut out, name, &pairs, None, metric.get_gauge().get_value());
                }
                MetricType::HISTOGRAM => histogram(&mut out, name, &pairs, metric, parts),
                MetricType::SUMMARY | MetricType::UNTYPED => {}
            }
        }
    }
    out
}

#[allow(clippy::cast_precision_loss)] // sample counts, printed as doubles as Java prints them
fn histogram(
    out: &mut String,
    name: &str,
    pairs: &[&LabelPair],
    metric: &Metric,
    parts: [bool; 3],
) {
    let h = metric.get_histogram();
    if parts[0] {
        let bucket = format!("{name}_bucket");
        let mut inf_seen = false;
        for b in h.get_bucket() {
            let bound = b.upper_bound();
            inf_seen |= bound.is_infinite() && bound.is_sign_positive();
            sample(out, &bucket, pairs, Some(&java_double(bound)), b.cumulative_count() as f64);
        }
        if !inf_seen {
            sample(out, &bucket, pairs, Some("+Inf"), h.get_sample_count() as f64);
        }
    }
    if parts[1] {
        sample(out, &format!("{name}_count"), pairs, None, h.get_sample_count() as f64);
    }
    if parts[2] {
        sample(out, &format!("{name}_sum"), pairs, None, h.get_sample_sum());
    }
}

/// The sample's labels in `declared` order; any not declared follow in their own order.
fn ordered<'a>(labels: &'a [LabelPair], declared: &[String]) -> Vec<&'a LabelPair> {
    let rank = |l: &LabelPair| declared.iter().position(|d| d == l.name()).unwrap_or(usize::MAX);
    let mut pairs: Vec<&LabelPair> = labels.iter().collect();
    pairs.sort_by_key(|l| rank(l));
    pairs
}

fn sample(out: &mut String, name: &str, pairs: &[&LabelPair], le: Option<&str>, value: f64) {
    out.push_str(name);
    if !pairs.is_empty() || le.is_some() {
        out.push('{');
        for pair in pairs {
            let _ = write!(out, "{}=\"{}\",", pair.name(), escape(pair.value(), true));
        }
        if let Some(le) = le {
            let _ = write!(out, "le=\"{le}\",");
        }
        out.push('}');
    }
    out.push(' ');
    out.push_str(&java_double(value));
    out.push('\n');
}

/// HELP texts escape `\` and newlines; label values also `"`.
fn escape(text: &str, quotes: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quotes => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out
}

/// A double as Java's `Double.toString` prints it (what simpleclient writes): at least one digit
/// after the point, scientific notation (`1.0E-4`, `1.23E7`) below 10⁻³ and from 10⁷ on, and
/// `+Inf`, `-Inf`, `NaN`.
pub fn java_double(value: f64) -> String {
    if value.is_nan() {
        return "NaN".into();
    }
    if value.is_infinite() {
        return if value > 0.0 { "+Inf".into() } else { "-Inf".into() };
    }
    let magnitude = value.abs();
    if magnitude == 0.0 || (1e-3..1e7).contains(&magnitude) {
        let plain = value.to_string();
        return if plain.contains('.') { plain } else { format!("{plain}.0") };
    }
    let scientific = format!("{value:e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let mantissa =
        if mantissa.contains('.') { mantissa.to_owned() } else { format!("{mantissa}.0") };
    format!("{mantissa}E{exponent}")
}

#[cfg(test)]
mod tests {
    use prometheus::{CounterVec, HistogramOpts, HistogramVec, IntCounter, Opts, Registry};

    use super::*;

    #[test]
    fn doubles_print_as_java_prints_them() {
        let cases = [
            (3.0, "3.0"),
            (0.0, "0.0"),
            (10.0, "10.0"),
            (9_999_999.0, "9999999.0"),
            (0.005, "0.005"),
            (0.001, "0.001"),
            (290_371.129, "290371.129"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1e-4, "1.0E-4"),
            (1e7, "1.0E7"),
            (12_345_678.9, "1.23456789E7"),
            (-2.5e-5, "-2.5E-5"),
            (f64::INFINITY, "+Inf"),
            (f64::NAN, "NaN"),
        ];
        for (value, want) in cases {
            assert_eq!(java_double(value), want, "{value}");
        }
    }

    /// The lines TorchServe's own tests match: declared label order, trailing commas, doubles.
    #[test]
    fn families_render_as_torchserve_s_java_client_writes_them() {
        let registry = Registry::new();
        let mut order = LabelOrder::default();
        let requests = CounterVec::new(
            Opts::new("Requests2XX", "Torchserve prometheus counter metric with unit: Count"),
            &["Level", "Hostname"],
        )
        .unwrap();
        let h = HistogramVec::new(
            HistogramOpts::new("h", "line1\nback\\slash").buckets(vec![0.005, 0.01]),
            &["a"],
        )
        .unwrap();
        let plain = IntCounter::new("NoLabels", "no labels").unwrap();
        for c in [
            Box::new(requests.clone()) as Box<dyn Collector>,
            Box::new(h.clone()),
            Box::new(plain.clone()),
        ] {
            order.add(c.as_ref());
            registry.register(c).unwrap();
        }
        requests.with_label_values(&["Host", "vm"]).inc_by(3.0);
        h.with_label_values(&["x"]).observe(0.007);
        h.with_label_values(&["x"]).observe(0.5);
        plain.inc();
        let text = render(&registry.gather(), &order, &[]);
        let want = "# HELP NoLabels no labels\n# TYPE NoLabels counter\nNoLabels 1.0\n\
                    # HELP Requests2XX Torchserve prometheus counter metric with unit: Count\n\
                    # TYPE Requests2XX counter\nRequests2XX{Level=\"Host\",Hostname=\"vm\",} 3.0\n\
                    # HELP h line1\\nback\\\\slash\n# TYPE h histogram\n\
                    h_bucket{a=\"x\",le=\"0.005\",} 0.0\nh_bucket{a=\"x\",le=\"0.01\",} 1.0\n\
                    h_bucket{a=\"x\",le=\"+Inf\",} 2.0\nh_count{a=\"x\",} 2.0\nh_sum{a=\"x\",} 0.507\n";
        assert_eq!(text, want);

        // `name[]` takes family names, and a histogram's sample names for just those lines.
        let only = |names: &[&str]| {
            let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
            render(&registry.gather(), &order, &names)
        };
        assert!(
            only(&["Requests2XX"]).ends_with("Requests2XX{Level=\"Host\",Hostname=\"vm\",} 3.0\n")
        );
        let buckets = only(&["h_bucket"]);
        assert!(buckets.contains("h_bucket") && !buckets.contains("h_count"), "{buckets}");
        assert_eq!(only(&["nothing"]), "");
    }
}
