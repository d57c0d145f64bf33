//! The driver: for each scenario it starts a fresh mock upstream and a fresh release proxy as
//! child processes, runs the same clients straight against the mock (the floor) and then
//! through the proxy, samples the proxy's CPU and memory from /proc, and writes the report.
//!
//! Everything is bounded: every connect and read has a timeout, every stream a deadline, the
//! whole run `--max-seconds`; the mock exits when the driver's pipe to it closes, and the proxy
//! runs under `timeout -s KILL` so it dies even if the driver is killed outright.

use crate::cancel::{self, CancelResult, CancelTarget};
use crate::churn::{self, ChurnTarget};
use crate::client::{self, StreamResult, LIMITS};
use crate::coldstart;
use crate::idle::run_idle;
use crate::openloop::{self, JsonTarget};
use crate::overwrite;
use crate::processes::{Mock, Perf, Proxy};
use crate::procfs::{self, Cpu};
use crate::report;
use crate::results::{Outcome, Phase, ScenarioResult, Usage};
use crate::scenarios::{scenarios, Kind, Mode, Scenario, Shape};
use crate::stalled;
use crate::stats::Pct;
use crate::token::Spec;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::time::timeout;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long, value_enum, default_value = "smoke")]
    mode: Mode,
    /// The proxy binary to measure.
    #[arg(long, default_value = "target/release/deepchat-proxy")]
    proxy: PathBuf,
    /// Where logs, results.json and report.md are written.
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
    /// Run only these scenarios (repeatable): a full name (`steady-100`) or a family (`burst`).
    #[arg(long)]
    only: Vec<String>,
    /// Record a `perf record` profile of the proxy during each proxy phase (OUT/NAME.perf.data).
    #[arg(long)]
    perf: bool,
    /// What is measured, for the report (e.g. the commit the proxy was built from).
    #[arg(long, default_value = "")]
    label: String,
    /// Before each scenario, wait up to this many seconds for the machine to be quiet (other
    /// processes using under a fifth of a CPU), so parallel builds disturb the numbers less.
    #[arg(long, default_value_t = 0)]
    quiet_wait: u64,
    /// Give up on the whole run after this many seconds.
    #[arg(long, default_value_t = 900)]
    max_seconds: u64,
}

pub fn main(args: Args) -> ExitCode {
    // Thousands of sockets: raise the soft open-files limit to the hard one (children inherit).
    if let Err(err) = rlimit::increase_nofile_limit(u64::MAX) {
        eprintln!("bench: could not raise the open-files limit: {err}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("bench: no runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let limit = Duration::from_secs(args.max_seconds);
    let outcome = runtime.block_on(async {
        // On Ctrl-C the run is dropped, and with it every child process.
        tokio::select! {
            outcome = timeout(limit, run(&args)) => outcome,
            _ = tokio::signal::ctrl_c() => Ok(Err("interrupted".to_owned())),
        }
    });
    // Children are killed as their handles drop; don't wait for stray client tasks.
    runtime.shutdown_timeout(Duration::from_secs(2));
    match outcome {
        Ok(Ok(0)) => ExitCode::SUCCESS,
        Ok(Ok(incomplete)) => {
            eprintln!(
                "bench: FAILED: {incomplete} replies were incomplete or incorrect, or checks failed"
            );
            ExitCode::FAILURE
        }
        Ok(Err(err)) => {
            eprintln!("bench: FAILED: {err}");
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!("bench: FAILED: gave up after {} s", args.max_seconds);
            ExitCode::FAILURE
        }
    }
}

/// Runs the selected scenarios; returns how many replies were incomplete or wrong.
async fn run(args: &Args) -> Result<usize, String> {
    std::fs::create_dir_all(&args.out)
        .map_err(|e| format!("cannot create {}: {e}", args.out.display()))?;
    if !args.proxy.is_file() {
        return Err(format!(
            "no proxy binary at {} (cargo build --release first)",
            args.proxy.display()
        ));
    }
    let machine = procfs::machine();
    println!("machine: {machine}");
    println!("proxy: {} {}", args.proxy.display(), args.label);
    let selected: Vec<Scenario> = scenarios(args.mode)
        .into_iter()
        .filter(|s| {
            args.only.is_empty()
                || args
                    .only
                    .iter()
                    .any(|o| s.name == *o || s.name.starts_with(&format!("{o}-")))
        })
        .collect();
    if selected.is_empty() {
        return Err("no scenario matches --only".into());
    }
    let mut results = Vec::new();
    let mut next_id = 1u64;
    let mut incomplete = 0;
    for scenario in selected {
        println!("== {}", scenario.name);
        wait_for_quiet(Duration::from_secs(args.quiet_wait)).await;
        let result = run_scenario(args, &scenario, &mut next_id).await?;
        println!("{}", report::one_line(&result));
        incomplete += result.incomplete();
        results.push(result);
    }
    let json = serde_json::to_string_pretty(&results).map_err(|e| e.to_string())?;
    write(&args.out.join("results.json"), &json)?;
    let markdown = report::markdown(&machine, args.mode, &args.label, &results);
    write(&args.out.join("report.md"), &markdown)?;
    println!("\n{markdown}");
    println!(
        "results: {} and {}",
        args.out.join("results.json").display(),
        args.out.join("report.md").display()
    );
    Ok(incomplete)
}

/// Waits (at most `limit`) until the machine's CPUs were less than 20 % busy over a second.
async fn wait_for_quiet(limit: Duration) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        let before = procfs::machine_cpu().unwrap_or_default();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let after = procfs::machine_cpu().unwrap_or_default();
        let busy = (after.processes + after.interrupts) - (before.processes + before.interrupts);
        if busy < 0.2 {
            return;
        }
        println!(
            "   waiting for a quiet machine ({:.0} % of a CPU busy)",
            busy * 100.0
        );
    }
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

async fn run_scenario(
    args: &Args,
    scenario: &Scenario,
    next_id: &mut u64,
) -> Result<ScenarioResult, String> {
    let lifetime = scenario_bound(scenario) + Duration::from_secs(120);
    let mock_args: Vec<String> = match scenario.kind {
        Kind::Stalled { .. } => vec![
            "--mss".into(),
            stalled::MSS.to_string(),
            "--send-buffer".into(),
            stalled::MOCK_SNDBUF.to_string(),
        ],
        _ => Vec::new(),
    };
    let mock = Mock::start(&args.out, &scenario.name, lifetime, &mock_args).await?;

    let proxy_flags: &[&str] = if scenario.upstream_http2 {
        &["--upstream-http2"]
    } else {
        &[]
    };
    let mut proxy = Proxy::start(
        &args.proxy,
        mock.addr,
        &args.out,
        &scenario.name,
        lifetime,
        proxy_flags,
    )
    .await?;
    let outcome = match scenario.kind {
        Kind::Idle { sockets } => Outcome::Idle(run_idle(&proxy, sockets).await),
        Kind::Stalled {
            clients,
            tokens,
            hold_s,
        } => {
            let first = *next_id;
            *next_id += clients as u64;
            Outcome::Stalled(Box::new(
                stalled::run(
                    proxy.addr,
                    proxy.pid,
                    mock.addr,
                    mock.pid,
                    clients,
                    tokens,
                    Duration::from_secs(hold_s),
                    first,
                )
                .await,
            ))
        }
        Kind::Streams {
            streams,
            tokens,
            rate,
            shape,
        } => {
            let plan = Plan {
                streams,
                tokens,
                rate,
                interval_us: if rate == 0 {
                    0
                } else {
                    1_000_000 / u64::from(rate)
                },
                shape,
            };
            let first = *next_id;
            *next_id += (streams + WARMUP_STREAMS) as u64;
            let direct = run_phase(Target::Direct(mock.addr), &plan, first, &mock, None).await;
            // Let sockets of the first phase finish closing before measuring the second.
            tokio::time::sleep(Duration::from_millis(500)).await;
            let first = *next_id;
            *next_id += (streams + WARMUP_STREAMS) as u64;
            let perf = args
                .perf
                .then(|| args.out.join(format!("{}.perf.data", scenario.name)));
            let target = if scenario.overwrite {
                Target::ProxyOverwrite(proxy.addr)
            } else {
                Target::Proxy(proxy.addr)
            };
            let via = run_phase(target, &plan, first, &mock, Some((proxy.pid, perf))).await;
            Outcome::Streams {
                direct: Box::new(direct),
                proxy: Box::new(via),
            }
        }
        Kind::Json { rate, seconds } => {
            let seconds = f64::from(seconds);
            let span = 2 * (u64::from(rate) * seconds as u64 + 1_000);
            let first = *next_id;
            *next_id += span;
            let direct = openloop::run_phase(
                JsonTarget::Mock(mock.addr),
                rate,
                seconds,
                first,
                mock.pid,
                None,
            )
            .await;
            tokio::time::sleep(Duration::from_millis(500)).await;
            let first = *next_id;
            *next_id += span;
            let via = openloop::run_phase(
                JsonTarget::Proxy(proxy.addr),
                rate,
                seconds,
                first,
                mock.pid,
                Some(proxy.pid),
            )
            .await;
            Outcome::Rate {
                direct: Box::new(direct),
                proxy: Box::new(via),
            }
        }
        Kind::Churn {
            transport,
            rate,
            seconds,
        } => {
            let seconds = f64::from(seconds);
            let span = u64::from(rate) * seconds as u64 + 100;
            let first = *next_id;
            *next_id += span;
            let direct = churn::run_phase(
                ChurnTarget::Direct(mock.addr),
                rate,
                seconds,
                first,
                mock.pid,
                None,
            )
            .await;
            tokio::time::sleep(Duration::from_millis(500)).await;
            let first = *next_id;
            *next_id += span;
            let via = churn::run_phase(
                ChurnTarget::Proxy(proxy.addr, transport),
                rate,
                seconds,
                first,
                mock.pid,
                Some(proxy.pid),
            )
            .await;
            Outcome::Rate {
                direct: Box::new(direct),
                proxy: Box::new(via),
            }
        }
        Kind::Cancel {
            streams,
            close,
            ramp_ms,
        } => {
            let ramp = Duration::from_millis(ramp_ms);
            let first = *next_id;
            *next_id += streams as u64;
            let direct = cancel::run_phase(
                CancelTarget::Mock(mock.addr),
                mock.addr,
                streams,
                ramp,
                first,
            )
            .await;
            tokio::time::sleep(Duration::from_millis(500)).await;
            let first = *next_id;
            *next_id += streams as u64;
            let via = cancel::run_phase(
                CancelTarget::Proxy(proxy.addr, close),
                mock.addr,
                streams,
                ramp,
                first,
            )
            .await;
            Outcome::Cancel(Box::new(CancelResult {
                close,
                streams,
                direct,
                proxy: via,
            }))
        }
        Kind::Cold { starts } => {
            // Each start is its own fresh proxy.
            proxy.stop().await;
            let first = *next_id;
            *next_id += 2 * starts as u64;
            let cold = coldstart::run(
                &args.proxy,
                mock.addr,
                &args.out,
                &scenario.name,
                starts,
                first,
            )
            .await;
            Outcome::Cold(Box::new(cold))
        }
    };
    // The cold-start scenario stops this proxy itself.
    let proxy_exited = match scenario.kind {
        Kind::Cold { .. } => None,
        _ => proxy.exited(),
    };
    proxy.stop().await;
    drop(mock);
    Ok(ScenarioResult {
        scenario: scenario.clone(),
        outcome,
        proxy_exited,
    })
}

/// The longest a scenario may take before its streams are given up on.
fn scenario_bound(scenario: &Scenario) -> Duration {
    match scenario.kind {
        Kind::Idle { .. } => Duration::from_secs(120),
        Kind::Stalled { hold_s, .. } => Duration::from_secs(hold_s + 120),
        Kind::Streams {
            tokens,
            rate,
            shape,
            ..
        } => 2 * stream_bound(tokens, rate, shape) + Duration::from_secs(30),
        Kind::Json { seconds, .. } | Kind::Churn { seconds, .. } => {
            Duration::from_secs(2 * u64::from(seconds) + 120)
        }
        Kind::Cancel { ramp_ms, .. } => {
            2 * (Duration::from_millis(ramp_ms) + cancel::CLOSE_WAIT) + Duration::from_secs(120)
        }
        Kind::Cold { starts } => Duration::from_secs(30 * starts as u64 + 60),
    }
}

/// The longest one conversation may take.
fn stream_bound(tokens: u32, rate: u32, shape: Shape) -> Duration {
    let streaming = if rate == 0 {
        Duration::from_secs(30)
    } else {
        Duration::from_secs_f64(f64::from(tokens) / f64::from(rate))
    };
    let ramp = match shape {
        Shape::Steady { ramp_ms } => Duration::from_millis(ramp_ms),
        Shape::Burst => Duration::ZERO,
    };
    ramp + streaming + LIMITS.connect + LIMITS.read
}

struct Plan {
    streams: usize,
    tokens: u32,
    rate: u32,
    interval_us: u64,
    shape: Shape,
}

#[derive(Clone, Copy)]
enum Target {
    Direct(SocketAddr),
    Proxy(SocketAddr),
    /// Through the proxy, reading replies in overwrite mode.
    ProxyOverwrite(SocketAddr),
}

/// Samples a process's RSS and open descriptors until stopped.
struct Sampler {
    stop: Arc<AtomicBool>,
    peak_rss: Arc<AtomicU64>,
    peak_fds: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Sampler {
    fn start(pid: u32) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let peak_rss = Arc::new(AtomicU64::new(procfs::rss_kib(pid).unwrap_or(0)));
        let peak_fds = Arc::new(AtomicUsize::new(0));
        let (s, r, f) = (stop.clone(), peak_rss.clone(), peak_fds.clone());
        let task = tokio::spawn(async move {
            // Bounded: at most an hour of samples even if never stopped.
            for tick in 0..36_000u32 {
                if s.load(Ordering::Relaxed) {
                    break;
                }
                if let Some(rss) = procfs::rss_kib(pid) {
                    r.fetch_max(rss, Ordering::Relaxed);
                }
                if tick % 5 == 0 {
                    if let Some(fds) = procfs::open_fds(pid) {
                        f.fetch_max(fds, Ordering::Relaxed);
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Sampler {
            stop,
            peak_rss,
            peak_fds,
            task,
        }
    }

    async fn finish(self) -> (u64, usize) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = timeout(Duration::from_secs(2), self.task).await;
        (
            self.peak_rss.load(Ordering::Relaxed),
            self.peak_fds.load(Ordering::Relaxed),
        )
    }
}

/// Short conversations run before each measured phase (not counted): first-connection costs,
/// lazy initialisation and the proxy's upstream pool are warm when measuring starts.
const WARMUP_STREAMS: usize = 8;

async fn warm_up(target: Target, first_id: u64) {
    let mut handles = Vec::new();
    for i in 0..WARMUP_STREAMS {
        let spec = Spec {
            id: first_id + i as u64,
            tokens: 5,
            interval_us: 0,
        };
        handles.push(tokio::spawn(async move {
            let conversation = async {
                match target {
                    Target::Direct(addr) => client::direct(addr, spec, LIMITS).await,
                    Target::Proxy(addr) => client::via_proxy(addr, "/chat", spec, LIMITS).await,
                    Target::ProxyOverwrite(addr) => {
                        overwrite::via_proxy(addr, "/chat", spec, LIMITS).await
                    }
                }
            };
            timeout(LIMITS.read, conversation).await
        }));
    }
    for handle in handles {
        match handle.await {
            Ok(Ok(result)) => {
                if let Err(why) = result.verdict {
                    eprintln!("bench: warm-up conversation failed: {why}");
                }
            }
            _ => eprintln!("bench: warm-up conversation did not finish"),
        }
    }
}

async fn run_phase(
    target: Target,
    plan: &Plan,
    first_id: u64,
    mock: &Mock,
    proxy: Option<(u32, Option<PathBuf>)>,
) -> Phase {
    warm_up(target, first_id + plan.streams as u64).await;
    let me = std::process::id();
    let proxy_pid = proxy.as_ref().map(|(pid, _)| *pid);
    let proxy_before = proxy_pid.map(|pid| {
        (
            procfs::cpu(pid).unwrap_or_default(),
            procfs::rss_kib(pid).unwrap_or(0),
        )
    });
    let sampler = proxy_pid.map(Sampler::start);
    let perf = match &proxy {
        Some((pid, Some(path))) => Perf::start(*pid, path),
        _ => None,
    };
    let mock_before = procfs::cpu(mock.pid).unwrap_or_default();
    let me_before = procfs::cpu(me).unwrap_or_default();
    let machine_before = procfs::machine_cpu().unwrap_or_default();
    let overflows_before = procfs::listen_overflows().unwrap_or(0);

    let bound = stream_bound(plan.tokens, plan.rate, plan.shape);
    let start = tokio::time::Instant::now() + Duration::from_millis(100);
    let mut handles = Vec::with_capacity(plan.streams);
    for i in 0..plan.streams {
        let offset = match plan.shape {
            Shape::Burst => Duration::ZERO,
            Shape::Steady { ramp_ms } => {
                Duration::from_millis(ramp_ms).mul_f64(i as f64 / plan.streams as f64)
            }
        };
        let spec = Spec {
            id: first_id + i as u64,
            tokens: plan.tokens,
            interval_us: plan.interval_us,
        };
        handles.push(tokio::spawn(async move {
            tokio::time::sleep_until(start + offset).await;
            let started = Instant::now();
            let conversation = async {
                match target {
                    Target::Direct(addr) => client::direct(addr, spec, LIMITS).await,
                    Target::Proxy(addr) => client::via_proxy(addr, "/chat", spec, LIMITS).await,
                    Target::ProxyOverwrite(addr) => {
                        overwrite::via_proxy(addr, "/chat", spec, LIMITS).await
                    }
                }
            };
            match timeout(bound, conversation).await {
                Ok(result) => result,
                Err(_) => StreamResult::gave_up(started, format!("not done within {bound:?}")),
            }
        }));
    }
    let mut results = Vec::with_capacity(plan.streams);
    for handle in handles {
        match handle.await {
            Ok(result) => results.push(result),
            Err(err) => results.push(StreamResult::gave_up(
                Instant::now(),
                format!("client task failed: {err}"),
            )),
        }
    }

    let mock_cpu = procfs::cpu(mock.pid).unwrap_or_default().since(mock_before);
    let me_cpu = procfs::cpu(me).unwrap_or_default().since(me_before);
    let machine_after = procfs::machine_cpu().unwrap_or_default();
    let proxy_cpu = match (proxy_pid, proxy_before) {
        (Some(pid), Some((before, _))) => procfs::cpu(pid).unwrap_or_default().since(before),
        _ => Cpu::default(),
    };
    let other_cpu = (machine_after.processes
        - machine_before.processes
        - mock_cpu.total()
        - me_cpu.total()
        - proxy_cpu.total())
    .max(0.0);
    let usage = match (proxy_pid, proxy_before, sampler) {
        (Some(pid), Some((_, rss_before)), Some(sampler)) => {
            let cpu = proxy_cpu;
            // Let closed sockets be reaped before reading memory after the load.
            tokio::time::sleep(Duration::from_millis(500)).await;
            let (peak, fds) = sampler.finish().await;
            let after = procfs::rss_kib(pid).unwrap_or(0);
            Some(Usage {
                cpu_user_s: cpu.user,
                cpu_system_s: cpu.system,
                rss_before_kib: rss_before,
                rss_peak_kib: peak.max(after),
                rss_after_kib: after,
                fds_peak: fds,
                fds_after: procfs::open_fds(pid).unwrap_or(0),
            })
        }
        _ => None,
    };
    if let Some(perf) = perf {
        perf.stop().await;
    }
    let mut phase = summarize(plan.streams, results, usage, mock_cpu, me_cpu);
    phase.other_cpu_s = other_cpu;
    phase.interrupt_cpu_s = machine_after.interrupts - machine_before.interrupts;
    phase.listen_overflows = procfs::listen_overflows()
        .unwrap_or(0)
        .saturating_sub(overflows_before);
    phase
}

fn summarize(
    streams: usize,
    results: Vec<StreamResult>,
    proxy: Option<Usage>,
    mock_cpu: Cpu,
    me_cpu: Cpu,
) -> Phase {
    let mut failures = Vec::new();
    let mut complete = 0;
    let (mut tokens, mut frames) = (0u64, 0u64);
    let (mut wire_bytes, mut text_bytes) = (0u64, 0u64);
    let mut connects = Vec::with_capacity(results.len());
    let mut ttfts = Vec::with_capacity(results.len());
    let mut delays = Vec::new();
    let first = results.iter().map(|r| r.started).min();
    let last = results.iter().map(|r| r.finished).max();
    for result in results {
        match &result.verdict {
            Ok(()) => complete += 1,
            Err(why) => failures.push(why.clone()),
        }
        tokens += u64::from(result.tokens);
        frames += u64::from(result.frames);
        wire_bytes += result.wire_bytes;
        text_bytes += result.text_bytes;
        connects.push(nanos(result.connect));
        if let Some(ttft) = result.ttft {
            ttfts.push(nanos(ttft));
        }
        delays.extend_from_slice(&result.delays_ns);
    }
    let wall_s = match (first, last) {
        (Some(first), Some(last)) => last.duration_since(first).as_secs_f64(),
        _ => 0.0,
    };
    Phase {
        streams,
        complete,
        failures: summarize_failures(failures),
        connect: Pct::of_ns(connects),
        first_token: Pct::of_ns(ttfts),
        per_token: Pct::of_ns(delays),
        tokens,
        frames,
        wire_bytes,
        text_bytes,
        wall_s,
        proxy,
        mock_cpu_s: mock_cpu.total(),
        loadgen_cpu_s: me_cpu.total(),
        other_cpu_s: 0.0,
        interrupt_cpu_s: 0.0,
        listen_overflows: 0,
    }
}

/// Distinct failure reasons with their counts, most frequent first.
pub(crate) fn summarize_failures(failures: Vec<String>) -> Vec<String> {
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    for failure in failures {
        *counts.entry(failure).or_default() += 1;
    }
    let mut counted: Vec<(String, usize)> = counts.into_iter().collect();
    counted.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    counted
        .into_iter()
        .take(8)
        .map(|(why, n)| format!("{n} × {why}"))
        .collect()
}

fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}
