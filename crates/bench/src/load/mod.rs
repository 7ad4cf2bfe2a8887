//! The load generator: keep-alive HTTP/1.1 (or HTTP/2) requests against a TorchServe or OIP
//! inference endpoint, in a closed loop (a fixed number of virtual users, each sending its next
//! request when the last one is answered) or an open loop (requests sent on a fixed schedule,
//! whether or not earlier ones were answered).
//!
//! A closed loop slows down with the server, so it never sees the queue a real arrival rate builds:
//! the "coordinated omission" problem. The open loop measures each latency from the request's
//! *scheduled* send time, so a server that falls behind (or a generator that cannot keep up) shows
//! as latency, and counts the sends that left late.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use hdrhistogram::Histogram;
use indicatif::ProgressBar;
use tokio::time::Instant;

use crate::machine::{HostSampler, Machine, process_cpu_time};
use crate::result::{BenchResult, GeneratorHealth};
use crate::scrape::{self, ServerCounts};
use crate::stats::{self, Latency, StageHistograms};
use crate::timeline::{Timeline, Window};

mod config;

pub use config::{Input, LoadConfig, Protocol, Stop};

/// An open-loop send that leaves more than this many ms after its scheduled time counts as late.
/// Tokio's timer ticks in whole milliseconds, so anything finer would flag every send.
pub const LATE_AFTER_MS: f64 = 2.0;

/// Runs the warmup, then the measured phase, and summarises it.
///
/// `progress` shows requests done (hidden bars draw nothing). With the V2 protocol an input that is
/// not an OIP request (no `inputs` key) is wrapped into one using the model's metadata.
///
/// # Errors
/// Invalid settings, an unreadable V2 input, or a metrics endpoint that was given but cannot be
/// read. Failed requests are not errors: they are counted in the result.
pub async fn run(config: &LoadConfig, progress: &ProgressBar) -> anyhow::Result<BenchResult> {
    config.validate()?;
    let mut config = config.clone();
    if config.protocol == Protocol::V2 {
        let meta_client = config.client(1)?;
        let mut inputs = std::mem::take(&mut config.inputs);
        for input in &mut inputs {
            input.body = crate::v2::request_body(&meta_client, &config, &input.body)
                .await
                .with_context(|| format!("preparing input {} for the V2 protocol", input.name))?;
        }
        config.inputs = inputs;
    }
    let config = Arc::new(config);
    if config.warmup > 0 {
        let warm = LoadConfig {
            stop: Stop::Requests(config.warmup),
            concurrency: config.rate.map_or(config.concurrency, |_| config.max_in_flight.min(8)),
            ..(*config).clone()
        };
        progress.set_message("warming up");
        closed_loop(Arc::new(warm), Arc::new(AtomicU64::new(0))).await?;
    }

    let scrape_client = config.client(1)?;
    let before = match &config.metrics_url {
        Some(url) => Some(
            scrape::scrape(&scrape_client, url, &config.model, config.version.as_deref()).await?,
        ),
        None => None,
    };
    let started_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let cpu_before = process_cpu_time();
    let done = Arc::new(AtomicU64::new(0));
    let (finished_tx, finished_rx) = tokio::sync::oneshot::channel();
    let watcher =
        tokio::spawn(watch(Arc::clone(&done), config.stop, progress.clone(), finished_rx));

    let outcome = match config.rate {
        None => closed_loop(Arc::clone(&config), Arc::clone(&done)).await?,
        Some(rate) => open_loop(Arc::clone(&config), rate, Arc::clone(&done)).await?,
    };
    let _ = finished_tx.send(());
    let sampler = watcher.await.ok();
    let cpu = cpu_before.zip(process_cpu_time()).map(|(a, b)| b.saturating_sub(a));
    progress.finish_and_clear();

    let server_counts = match (&config.metrics_url, before) {
        (Some(url), Some(before)) => {
            let after =
                scrape::scrape(&scrape_client, url, &config.model, config.version.as_deref())
                    .await?;
            Some(ServerCounts::between(&before, &after))
        }
        _ => None,
    };
    Ok(summarise(&config, outcome, started_at, cpu, sampler, server_counts))
}

/// Counts of one phase, merged across virtual users.
#[derive(Debug)]
struct Recorder {
    latency: Histogram<u64>,
    ok: u64,
    sent: u64,
    errors: std::collections::BTreeMap<String, u64>,
    stages: StageHistograms,
}

impl Recorder {
    fn new() -> Self {
        Self {
            latency: stats::new_histogram(),
            ok: 0,
            sent: 0,
            errors: Default::default(),
            stages: StageHistograms::default(),
        }
    }

    fn record(&mut self, answer: Answer, latency: Duration) {
        self.sent += 1;
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX).max(1);
        match answer {
            Answer::Status { code, timing } => {
                self.latency.saturating_record(us);
                if (200..300).contains(&code) {
                    self.ok += 1;
                    if let Some(t) = timing {
                        self.stages.record_header(&t);
                    }
                } else {
                    *self.errors.entry(code.to_string()).or_insert(0) += 1;
                }
            }
            Answer::Failed(kind) => *self.errors.entry(kind.into()).or_insert(0) += 1,
        }
    }

    /// Records a request both here and in the run's timeline, `at` its send time from the start.
    fn record_in(
        &mut self,
        timeline: &Mutex<Timeline>,
        answer: Answer,
        latency: Duration,
        at: Duration,
    ) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let (answered, ok) = match &answer {
            Answer::Status { code, .. } => (Some(us), (200..300).contains(code)),
            Answer::Failed(_) => (None, false),
        };
        lock(timeline).record(at, answered, ok);
        self.record(answer, latency);
    }

    fn merge(&mut self, other: &Self) {
        // Same bounds everywhere, so adding cannot fail.
        let _ = self.latency.add(&other.latency);
        self.ok += other.ok;
        self.sent += other.sent;
        for (k, v) in &other.errors {
            *self.errors.entry(k.clone()).or_insert(0) += v;
        }
        self.stages.merge(&other.stages);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What came back for one request.
#[derive(Debug)]
enum Answer {
    /// An HTTP answer, with its `Server-Timing` header when there was one.
    Status { code: u16, timing: Option<String> },
    /// No answer: `timeout` or `transport` (refused, reset, protocol error).
    Failed(&'static str),
}

async fn send(client: &reqwest::Client, config: &LoadConfig, url: &str, input: &Input) -> Answer {
    let mut request = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, &config.content_type)
        .body(input.body.clone());
    if let Some(token) = &config.token {
        request = request.bearer_auth(token);
    }
    let response = match request.send().await {
        Ok(r) => r,
        Err(e) => return Answer::Failed(if e.is_timeout() { "timeout" } else { "transport" }),
    };
    let code = response.status().as_u16();
    let timing =
        response.headers().get("server-timing").and_then(|v| v.to_str().ok()).map(str::to_owned);
    // The body is read to the end so the connection can be reused.
    match response.bytes().await {
        Ok(_) => Answer::Status { code, timing },
        Err(e) => Answer::Failed(if e.is_timeout() { "timeout" } else { "transport" }),
    }
}

/// The measured phase's raw outcome.
#[derive(Debug)]
struct Outcome {
    recorder: Recorder,
    elapsed: Duration,
    late_sends: u64,
    max_lateness: Duration,
    send_span: Option<Duration>,
    timeline: Vec<Window>,
}

/// Virtual users, each on its own keep-alive connection, each sending its next request as soon as
/// the previous one is answered.
async fn closed_loop(config: Arc<LoadConfig>, done: Arc<AtomicU64>) -> anyhow::Result<Outcome> {
    let issued = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = match config.stop {
        Stop::Duration(d) => Some(start + d),
        Stop::Requests(_) => None,
    };
    let url = Arc::new(config.endpoint());
    let timeline = config.timeline();
    let mut users = tokio::task::JoinSet::new();
    for _ in 0..config.concurrency {
        let client = config.client(1)?;
        let (config, issued, done, url, timeline) = (
            Arc::clone(&config),
            Arc::clone(&issued),
            Arc::clone(&done),
            Arc::clone(&url),
            Arc::clone(&timeline),
        );
        users.spawn(async move {
            let mut recorder = Recorder::new();
            loop {
                let k = issued.fetch_add(1, Ordering::Relaxed);
                let more = match (config.stop, deadline) {
                    (Stop::Requests(n), _) => k < n,
                    (_, Some(deadline)) => Instant::now() < deadline,
                    (Stop::Duration(_), None) => false,
                };
                if !more {
                    break;
                }
                let input = &config.inputs[(k % config.inputs.len() as u64) as usize];
                let sent = Instant::now();
                let answer = send(&client, &config, &url, input).await;
                recorder.record_in(&timeline, answer, sent.elapsed(), sent - start);
                done.fetch_add(1, Ordering::Relaxed);
            }
            recorder
        });
    }
    let mut recorder = Recorder::new();
    while let Some(user) = users.join_next().await {
        recorder.merge(&user.context("a virtual user panicked")?);
    }
    let elapsed = start.elapsed();
    // Sends go on until the deadline; a run of n requests sends until nearly the end.
    let sending = match config.stop {
        Stop::Duration(d) => d.min(elapsed),
        Stop::Requests(_) => elapsed,
    };
    Ok(Outcome {
        recorder,
        elapsed,
        late_sends: 0,
        max_lateness: Duration::ZERO,
        send_span: None,
        timeline: lock(&timeline).windows(sending),
    })
}

/// Requests sent on a fixed schedule (`i / rate` seconds after the start), each on its own task,
/// at most `max_in_flight` at once over a shared connection pool.
async fn open_loop(
    config: Arc<LoadConfig>,
    rate: f64,
    done: Arc<AtomicU64>,
) -> anyhow::Result<Outcome> {
    let total = match config.stop {
        Stop::Requests(n) => n,
        Stop::Duration(d) => ((d.as_secs_f64() * rate).round() as u64).max(1),
    };
    let client = config.client(config.max_in_flight)?;
    let url = Arc::new(config.endpoint());
    let recorder = Arc::new(Mutex::new(Recorder::new()));
    let timeline = config.timeline();
    let room = Arc::new(tokio::sync::Semaphore::new(config.max_in_flight));
    let late_after = Duration::from_secs_f64(LATE_AFTER_MS / 1e3);
    let (mut late_sends, mut max_lateness) = (0u64, Duration::ZERO);
    let start = Instant::now();
    let mut last_send = start;
    for i in 0..total {
        let scheduled = start + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(scheduled).await;
        let permit = Arc::clone(&room).acquire_owned().await.context("the in-flight cap closed")?;
        last_send = Instant::now();
        let lateness = last_send.saturating_duration_since(scheduled);
        if lateness > late_after {
            late_sends += 1;
        }
        max_lateness = max_lateness.max(lateness);
        let input = config.inputs[(i % config.inputs.len() as u64) as usize].clone();
        let (client, config, url, recorder, done, timeline) = (
            client.clone(),
            Arc::clone(&config),
            Arc::clone(&url),
            Arc::clone(&recorder),
            Arc::clone(&done),
            Arc::clone(&timeline),
        );
        tokio::spawn(async move {
            let answer = send(&client, &config, &url, &input).await;
            let latency = Instant::now().saturating_duration_since(scheduled);
            lock(&recorder).record_in(&timeline, answer, latency, scheduled - start);
            done.fetch_add(1, Ordering::Relaxed);
            drop(permit);
        });
    }
    // Every request in flight holds a permit: having them all back means every answer is in.
    let cap = u32::try_from(config.max_in_flight).unwrap_or(u32::MAX);
    let all = room.acquire_many(cap).await.context("the in-flight cap closed")?;
    let elapsed = start.elapsed();
    drop(all);
    let recorder = std::mem::replace(&mut *lock(&recorder), Recorder::new());
    Ok(Outcome {
        recorder,
        elapsed,
        late_sends,
        max_lateness,
        send_span: Some(last_send.saturating_duration_since(start)),
        // Requests count by scheduled send time, so the run's windows end with the schedule.
        timeline: lock(&timeline).windows(Duration::from_secs_f64(total as f64 / rate)),
    })
}

/// Moves the progress bar and samples the machine's CPU and memory (once a second) until
/// `finished` fires; returns the samples.
async fn watch(
    done: Arc<AtomicU64>,
    stop: Stop,
    progress: ProgressBar,
    mut finished: tokio::sync::oneshot::Receiver<()>,
) -> HostSampler {
    let mut sampler = HostSampler::new();
    if let Stop::Requests(n) = stop {
        progress.set_length(n);
    }
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut ticks = 0u64;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = &mut finished => return sampler,
        }
        ticks += 1;
        let n = done.load(Ordering::Relaxed);
        match stop {
            Stop::Requests(_) => progress.set_position(n),
            Stop::Duration(d) => {
                progress.set_length(d.as_millis() as u64);
                progress
                    .set_position((started.elapsed().as_millis() as u64).min(d.as_millis() as u64));
            }
        }
        let secs = started.elapsed().as_secs_f64().max(1e-3);
        progress.set_message(format!("{n} answered, {:.0} req/s", n as f64 / secs));
        if ticks.is_multiple_of(4) {
            sampler.sample();
        }
    }
}

fn summarise(
    config: &LoadConfig,
    outcome: Outcome,
    started_at: String,
    cpu: Option<Duration>,
    sampler: Option<HostSampler>,
    server_counts: Option<ServerCounts>,
) -> BenchResult {
    let r = &outcome.recorder;
    let secs = outcome.elapsed.as_secs_f64().max(1e-9);
    let answered = r.latency.len();
    let machine = Machine::current();
    let (host_cpu, host_memory) = sampler.as_ref().map(HostSampler::means).unwrap_or((None, None));
    let mut generator = GeneratorHealth {
        cpu_seconds: cpu.map(|c| c.as_secs_f64()),
        cores_busy: cpu.map(|c| c.as_secs_f64() / secs),
        host_cpu_percent: host_cpu,
        host_memory_percent: host_memory,
        late_sends: outcome.late_sends,
        max_lateness_ms: outcome.max_lateness.as_secs_f64() * 1e3,
        achieved_send_rate: None,
        warnings: Vec::new(),
    };
    if let (Some(rate), Some(span)) = (config.rate, outcome.send_span) {
        // n sends span n-1 intervals.
        let achieved =
            if r.sent > 1 { (r.sent - 1) as f64 / span.as_secs_f64().max(1e-9) } else { rate };
        generator.achieved_send_rate = Some(achieved);
        if achieved < rate * 0.95 {
            generator.warnings.push(format!(
                "the open loop sent {achieved:.1} req/s against a target of {rate} req/s: the generator \
                 or the in-flight cap ({}) could not keep the schedule",
                config.max_in_flight
            ));
        }
        if outcome.late_sends * 100 > r.sent {
            generator.warnings.push(format!(
                "{} of {} sends left more than {LATE_AFTER_MS} ms after their scheduled time (max {:.1} ms); \
                 latencies count from the schedule, so the delay is included",
                outcome.late_sends, r.sent, generator.max_lateness_ms
            ));
        }
    }
    if let Some(cores) = generator.cores_busy
        && cores > 0.7 * machine.logical_cores as f64
    {
        generator.warnings.push(format!(
            "the load generator kept {cores:.1} of {} cores busy: it may be the bottleneck (run it on \
             another machine, or lower the concurrency)",
            machine.logical_cores
        ));
    }
    if let Some(cpu) = host_cpu
        && cpu > 90.0
    {
        generator.warnings.push(format!(
            "the machine's CPU was {cpu:.0}% busy on average: client and server compete for it"
        ));
    }
    BenchResult {
        started_at,
        url: config.endpoint(),
        model: config.model.clone(),
        protocol: config.protocol.as_str().into(),
        mode: if config.rate.is_some() { "open" } else { "closed" }.into(),
        concurrency: if config.rate.is_some() { config.max_in_flight } else { config.concurrency },
        target_rate: config.rate,
        warmup: config.warmup,
        requests: r.sent,
        ok: r.ok,
        failed: r.sent - r.ok,
        errors: r.errors.clone(),
        duration_s: secs,
        throughput_rps: answered as f64 / secs,
        latency_ms: Latency::from_histogram(&r.latency),
        distribution: stats::distribution(&r.latency),
        server_timing: r.stages.summaries(),
        server_counts,
        generator,
        machine,
        timeline: outcome.timeline,
    }
}
