//! The recommended configuration: the highest throughput whose P99 meets the SLA.
//!
//! A pure function of recorded results, so the rule is tested on its own. Measured throughputs
//! differ by noise, so throughputs within `tie_tolerance` of the best count as a tie, and a tie is
//! broken by the lower P99, then by the cheaper configuration (fewer workers, smaller batch,
//! shorter delay), then by sweep order. A configuration with any failed request does not meet the
//! SLA: a server shedding load can post a fine P99 over the requests it did answer.

use serde::{Deserialize, Serialize};

/// One measured configuration, as the choice sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// Case name.
    pub name: String,
    /// Answered requests per second.
    pub throughput_rps: f64,
    /// Client-side P99 latency (ms).
    pub p99_ms: f64,
    /// Failed requests.
    pub failed: u64,
    /// Workers.
    pub workers: usize,
    /// Batch size.
    pub batch_size: usize,
    /// Batch delay (ms).
    pub batch_delay: u64,
}

/// A chosen candidate and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pick {
    /// Index into the candidates.
    pub index: usize,
    /// Its name.
    pub name: String,
    /// Why it was chosen (or ranked second).
    pub why: String,
}

/// The outcome of [`choose`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    /// The SLA applied.
    pub sla_p99_ms: f64,
    /// The recommended configuration; `None` when nothing meets the SLA.
    pub best: Option<Pick>,
    /// The next best configuration meeting the SLA.
    pub runner_up: Option<Pick>,
    /// When nothing meets the SLA: the candidate with the lowest P99 among those without failures
    /// (or among all when every one failed requests).
    pub closest: Option<Pick>,
}

/// Picks the best candidate under `sla_p99_ms`, and the runner-up. `tie_tolerance` is relative
/// (0.02: throughputs within 2% of the best tie).
pub fn choose(candidates: &[Candidate], sla_p99_ms: f64, tie_tolerance: f64) -> Choice {
    let meets = |c: &Candidate| c.failed == 0 && c.p99_ms <= sla_p99_ms && c.p99_ms.is_finite();
    let mut eligible: Vec<usize> =
        (0..candidates.len()).filter(|i| meets(&candidates[*i])).collect();
    let Some(best) = pick(candidates, &eligible, tie_tolerance) else {
        return Choice {
            sla_p99_ms,
            best: None,
            runner_up: None,
            closest: closest(candidates, sla_p99_ms),
        };
    };
    eligible.retain(|i| *i != best);
    let runner_up = pick(candidates, &eligible, tie_tolerance);
    let b = &candidates[best];
    let ties = eligible
        .iter()
        .filter(|i| within(candidates[**i].throughput_rps, b.throughput_rps, tie_tolerance))
        .count();
    let mut why = format!(
        "highest throughput meeting the SLA: {:.1} req/s at P99 {:.2} ms ≤ {sla_p99_ms} ms",
        b.throughput_rps, b.p99_ms
    );
    if ties > 0 {
        why += &format!(
            "; {ties} other configuration(s) within {:.0}% on throughput, and this one has the lowest \
             P99 (then the fewest workers, smallest batch, shortest delay)",
            tie_tolerance * 100.0
        );
    }
    let runner_up = runner_up.map(|r| Pick {
        index: r,
        name: candidates[r].name.clone(),
        why: second(b, &candidates[r], tie_tolerance),
    });
    Choice {
        sla_p99_ms,
        best: Some(Pick { index: best, name: b.name.clone(), why }),
        runner_up,
        closest: None,
    }
}

fn within(a: f64, best: f64, tolerance: f64) -> bool {
    a >= best * (1.0 - tolerance)
}

/// The best of `among`: the top throughput (within tolerance), then the tie-breakers.
fn pick(c: &[Candidate], among: &[usize], tolerance: f64) -> Option<usize> {
    let top = among.iter().map(|i| c[*i].throughput_rps).fold(f64::NEG_INFINITY, f64::max);
    among.iter().copied().filter(|i| within(c[*i].throughput_rps, top, tolerance)).min_by(|a, b| {
        let (x, y) = (&c[*a], &c[*b]);
        x.p99_ms
            .total_cmp(&y.p99_ms)
            .then(x.workers.cmp(&y.workers))
            .then(x.batch_size.cmp(&y.batch_size))
            .then(x.batch_delay.cmp(&y.batch_delay))
            .then(a.cmp(b))
    })
}

/// Why `r` ranks behind `b`.
fn second(b: &Candidate, r: &Candidate, tolerance: f64) -> String {
    if !within(r.throughput_rps, b.throughput_rps, tolerance) {
        let less = (1.0 - r.throughput_rps / b.throughput_rps) * 100.0;
        format!(
            "meets the SLA (P99 {:.2} ms) with {less:.1}% less throughput ({:.1} against {:.1} req/s)",
            r.p99_ms, r.throughput_rps, b.throughput_rps
        )
    } else if r.p99_ms > b.p99_ms {
        format!(
            "ties on throughput ({:.1} req/s, within {:.0}%) but its P99 is higher ({:.2} against {:.2} ms)",
            r.throughput_rps,
            tolerance * 100.0,
            r.p99_ms,
            b.p99_ms
        )
    } else {
        format!(
            "ties on throughput and P99 ({:.1} req/s, {:.2} ms) but costs more (workers {}, batch {}, delay {} ms)",
            r.throughput_rps, r.p99_ms, r.workers, r.batch_size, r.batch_delay
        )
    }
}

fn closest(c: &[Candidate], sla: f64) -> Option<Pick> {
    let clean: Vec<usize> = (0..c.len()).filter(|i| c[*i].failed == 0).collect();
    let pool: Vec<usize> = if clean.is_empty() { (0..c.len()).collect() } else { clean };
    let i = pool.into_iter().min_by(|a, b| c[*a].p99_ms.total_cmp(&c[*b].p99_ms))?;
    let why = if c[i].failed > 0 {
        format!(
            "every configuration failed requests; this one had the lowest P99 ({:.2} ms)",
            c[i].p99_ms
        )
    } else {
        format!(
            "no configuration meets P99 ≤ {sla} ms; the lowest P99 was {:.2} ms ({:.1} req/s): relax the \
             SLA, lower the load, or give the model more capacity",
            c[i].p99_ms, c[i].throughput_rps
        )
    };
    Some(Pick { index: i, name: c[i].name.clone(), why })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(name: &str, rps: f64, p99: f64, workers: usize, batch: usize) -> Candidate {
        Candidate {
            name: name.into(),
            throughput_rps: rps,
            p99_ms: p99,
            failed: 0,
            workers,
            batch_size: batch,
            batch_delay: 5,
        }
    }

    #[test]
    fn highest_throughput_under_the_sla_wins() {
        let cases = [
            case("a", 900.0, 40.0, 1, 1),
            case("b", 1500.0, 150.0, 2, 8),
            case("c", 1200.0, 90.0, 2, 4),
        ];
        let choice = choose(&cases, 100.0, 0.02);
        assert_eq!(choice.best.as_ref().unwrap().name, "c");
        let runner = choice.runner_up.unwrap();
        assert_eq!(runner.name, "a");
        assert!(runner.why.contains("25.0% less throughput"), "{}", runner.why);
        assert!(choice.closest.is_none());
    }

    #[test]
    fn ties_go_to_the_lower_p99_then_the_cheaper_configuration() {
        let cases = [
            case("w2b4", 1000.0, 60.0, 2, 4),
            case("w1b4", 1010.0, 80.0, 1, 4),
            case("w1b8", 995.0, 60.0, 1, 8),
        ];
        let choice = choose(&cases, 100.0, 0.02);
        // All three tie on throughput; w2b4 and w1b8 tie on P99; w1b8 has fewer workers.
        let best = choice.best.unwrap();
        assert_eq!(best.name, "w1b8");
        assert!(best.why.contains("2 other configuration(s)"), "{}", best.why);
        let runner = choice.runner_up.unwrap();
        assert_eq!(runner.name, "w2b4");
        assert!(runner.why.contains("costs more"), "{}", runner.why);
        // An exact tie on everything keeps sweep order.
        let same = [case("first", 500.0, 10.0, 1, 1), case("second", 500.0, 10.0, 1, 1)];
        assert_eq!(choose(&same, 100.0, 0.0).best.unwrap().name, "first");
    }

    #[test]
    fn a_configuration_that_failed_requests_does_not_qualify() {
        let mut shedding = case("shedding", 5000.0, 5.0, 4, 8);
        shedding.failed = 12;
        let cases = [shedding, case("steady", 800.0, 70.0, 1, 1)];
        let choice = choose(&cases, 100.0, 0.02);
        assert_eq!(choice.best.unwrap().name, "steady");
        assert!(choice.runner_up.is_none());
    }

    #[test]
    fn nothing_meets_the_sla() {
        let cases = [case("a", 900.0, 140.0, 1, 1), case("b", 1500.0, 120.0, 2, 8)];
        let choice = choose(&cases, 100.0, 0.02);
        assert!(choice.best.is_none() && choice.runner_up.is_none());
        let closest = choice.closest.unwrap();
        assert_eq!(closest.name, "b");
        assert!(closest.why.contains("no configuration meets"), "{}", closest.why);
        assert!(choose(&[], 100.0, 0.02).closest.is_none());
    }
}
