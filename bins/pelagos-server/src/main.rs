//! pelagos-server: the provisioning REST service, compatible with
//! teuthology's `pelagos` provisioner. Parses arguments, wires the engine,
//! its drivers and the task store, and serves the routes of [`api`] and the
//! OS image tree of [`images`].
#![allow(clippy::print_stdout)]

mod api;
mod api_v1;
mod auth;
// One file shared by the three binaries (`cargo xtask dist`).
#[path = "../../cli_docs.rs"]
mod cli_docs;
mod demo;
mod images;
mod metrics;
mod notify;
mod serve;
mod ui;
mod wire;

use anyhow::{Context, Result, bail};
use clap::Parser;
use pelagos_config::LabConfig;
use pelagos_provision::sim::{SimLab, SimMode};
use pelagos_provision::{
    BootRecordWriter, BootRecords, Drivers, Engine, ProductionOptions, Reloader, SqliteStore,
    SwapRecords, TaskLogs,
};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tracing::info;

/// REST service which provisions lab nodes over IPMI and PXE.
#[derive(Debug, Clone, Parser)]
#[command(name = "pelagos-server", version)]
struct Cli {
    /// Path to the lab config (JSON/Hjson).
    #[arg(long, required_unless_present = "demo")]
    config: Option<PathBuf>,
    /// TFTP root directory (boot records and OS images).
    #[arg(long = "tftpdir", required_unless_present = "demo")]
    tftp_dir: Option<PathBuf>,
    /// Run against a simulated lab: "fast" (~2 s per provision) or "medium" (~20 s).
    /// Without it the real hardware is driven: ipmitool, conmand's logs
    /// (`conman_log_dir`), SSH and salt-ssh.
    #[arg(long, value_parser = parse_sim)]
    simulation: Option<SimMode>,
    /// The ipmitool program (production mode).
    #[arg(long, value_name = "PATH", default_value = "ipmitool")]
    ipmitool: PathBuf,
    /// The salt-ssh program (production mode).
    #[arg(long = "salt-ssh", value_name = "PATH", default_value = "salt-ssh")]
    salt_ssh: PathBuf,
    /// SSH client key salt-ssh logs in with, for roster entries without
    /// their own `priv` (production mode).
    #[arg(long = "salt-priv-key", value_name = "PATH")]
    salt_priv_key: Option<PathBuf>,
    /// Address to listen on [default: 0.0.0.0:5000; 127.0.0.1:5000 with --demo].
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// HTTP Basic authentication against this htpasswd file (bcrypt
    /// entries, `htpasswd -B`): every route but `/`, `/version`,
    /// `GET /tasks/status/<id>` and the image route needs valid credentials.
    #[arg(long, value_name = "FILE")]
    htpasswd: Option<PathBuf>,
    /// Serve HTTPS with this PEM certificate chain (needs --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// At most this many open client connections (more wait).
    #[arg(long, default_value_t = 1024)]
    max_connections: usize,
    /// At most this many open connections from one client address (more are
    /// closed).
    #[arg(long, default_value_t = 256)]
    max_connections_per_client: usize,
    /// Seconds a client has to send a request's headers; also the keep-alive
    /// idle limit and the TLS handshake limit.
    #[arg(long, value_name = "SECONDS", default_value = "10", value_parser = parse_secs)]
    header_timeout: Duration,
    /// Seconds a client has to send a request's body.
    #[arg(long, value_name = "SECONDS", default_value = "30", value_parser = parse_secs)]
    body_timeout: Duration,
    /// Largest request body accepted, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 64 * 1024)]
    body_limit: usize,
    /// Seconds a stop (SIGTERM, Ctrl-C) waits for requests in flight before
    /// it closes the remaining connections and stops the task engine.
    #[arg(long, value_name = "SECONDS", default_value = "5", value_parser = parse_secs)]
    shutdown_grace: Duration,
    /// Directory for the task database (and simulated consoles).
    #[arg(long, env = "STATE_DIRECTORY")]
    state_dir: Option<PathBuf>,
    /// Base URL clients reach this server at, for absolute `Location`
    /// headers (default: from the request's Host header).
    #[arg(long)]
    public_url: Option<String>,
    /// URL path the image dirs of --tftpdir are served under (read-only,
    /// for kiwi's install initrd); boot records point there unless the lab
    /// sets `pxe.image_base_url` (a separate web server). `none`: not served.
    #[arg(long, default_value = pelagos_pxe::IMAGE_ROUTE, value_parser = images::parse_route)]
    image_route: images::Route,
    /// The server's own log on stderr: `text` (human-readable) or `json`
    /// (one object per line). Task logs are text either way.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Start on a bundled five-node demo lab with fast simulated hardware,
    /// in ./pelagos-demo (or --state-dir).
    #[arg(long)]
    demo: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn parse_sim(s: &str) -> Result<SimMode, String> {
    s.parse()
}

fn parse_secs(s: &str) -> Result<Duration, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 86_400.0 => Ok(Duration::from_secs_f64(v)),
        _ => Err(format!("expected seconds (0 < s <= 86400), got {s:?}")),
    }
}

fn main() -> Result<()> {
    if let Some(dir) = std::env::var_os(cli_docs::ENV) {
        return cli_docs::write(<Cli as clap::CommandFactory>::command(), dir.as_ref())
            .context("cannot write the CLI docs");
    }
    let cli = Cli::parse();
    let logs = TaskLogs::new();
    init_tracing(&logs, cli.log_format);
    raise_open_files_limit();
    // Blocking work is short file writes; a small pool keeps thousands of
    // concurrent provisions from spawning hundreds of threads (and malloc
    // arenas).
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(16)
        .build()
        .context("cannot start the async runtime")?
        .block_on(run(cli, logs))
}

fn init_tracing(logs: &Arc<TaskLogs>, format: LogFormat) {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{EnvFilter, Layer};
    let console_filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let task_filter = Targets::new()
        .with_target("pelagos_provision", LevelFilter::DEBUG)
        .with_target("pelagos_pxe", LevelFilter::DEBUG)
        .with_target("pelagos_ipmi", LevelFilter::DEBUG)
        .with_target("pelagos_conman", LevelFilter::DEBUG)
        // Each failed SSH probe says why the node is not ready yet.
        .with_target("pelagos::readiness", LevelFilter::DEBUG)
        .with_default(LevelFilter::INFO);
    tracing_subscriber::registry()
        .with(
            match format {
                LogFormat::Text => tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                    .boxed(),
                LogFormat::Json => tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::stderr)
                    .boxed(),
            }
            .with_filter(console_filter),
        )
        .with(logs.layer().with_filter(task_filter))
        .init();
}

async fn run(mut cli: Cli, logs: Arc<TaskLogs>) -> Result<()> {
    let demo = if cli.demo {
        let d = demo::prepare(cli.state_dir.clone())?;
        cli.config = Some(d.config.clone());
        cli.tftp_dir = Some(d.tftp_dir.clone());
        cli.state_dir = Some(d.state_dir.clone());
        cli.simulation.get_or_insert(SimMode::Fast);
        Some(d)
    } else {
        None
    };
    let (Some(config), Some(tftp_dir)) = (cli.config.clone(), cli.tftp_dir.clone()) else {
        bail!("--config and --tftpdir are required");
    };
    let state_dir = cli
        .state_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("pelagos-state"));
    // 0700 (an existing wider one is tightened, with a warning).
    pelagos_provision::store::create_private_dir(&state_dir)
        .with_context(|| format!("cannot create --state-dir {}", state_dir.display()))?;
    if !tftp_dir.is_dir() {
        bail!("--tftpdir {} is not a directory", tftp_dir.display());
    }
    // Before anything listens: a SIGHUP that arrives early must not kill
    // the server (SIGHUP's default action); it reloads once serving.
    let hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("cannot install the SIGHUP (reload) handler")?;
    // Lab-wide problems refuse to start; a node with problems of its own
    // is disabled, each problem logged once.
    let lab = Arc::new(LabConfig::load_serving(&config).context("cannot load --config")?);
    for node in lab.disabled_nodes() {
        pelagos_provision::reload::log_disabled(node);
    }
    info!(
        config = %config.display(),
        tftp = %tftp_dir.display(),
        nodes = lab.nodes.len(),
        disabled = lab.disabled_nodes().count(),
        "lab loaded"
    );

    let listen = listen_addr(cli.listen, cli.demo);
    // Read before binding: a bad file is reported before anything listens.
    let tls = match (&cli.tls_cert, &cli.tls_key) {
        (Some(cert), Some(key)) => Some(serve::tls_config(cert, key)?),
        _ => None,
    };
    let authenticator = match &cli.htpasswd {
        Some(path) => Some(Arc::new(
            auth::Authenticator::load(path)
                .with_context(|| format!("cannot use --htpasswd {}", path.display()))?,
        )),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on --listen {listen}"))?;
    let addr = listener.local_addr()?;
    if authenticator.is_none() && !addr.ip().is_loopback() {
        tracing::warn!(
            "no --htpasswd while listening on {addr}: anyone who reaches this address can \
             reimage every node of the lab (see docs/SECURITY.md)"
        );
    }
    let scheme = if tls.is_some() { "https" } else { "http" };

    // One writer for the server's life; a reload swaps the lab settings in it.
    let swap = SwapRecords::new(Arc::new(boot_records(&cli, &lab, &tftp_dir, addr.port())));
    let records: Arc<dyn BootRecordWriter> = swap.clone();
    let image_tree = match &cli.image_route.0 {
        Some(route) => Some((
            route.clone(),
            images::ImageTree::new(&tftp_dir)
                .with_context(|| format!("cannot resolve --tftpdir {}", tftp_dir.display()))?,
        )),
        None => None,
    };
    let (drivers, timing, sim) = drivers(&cli, &lab, records, &state_dir);
    let rebuild = reload_drivers(&cli, &drivers, swap, tftp_dir.clone(), addr.port());
    let metrics = metrics::install()?;
    let db = state_dir.join("pelagos.db");
    let store = Arc::new(
        SqliteStore::open(&db)
            .await
            .with_context(|| format!("cannot open task store {}", db.display()))?,
    );
    let engine = Engine::start(lab, timing, drivers, store, logs)
        .await
        .context("cannot start the task engine")?;
    let reloader = Arc::new(Reloader::new(
        config.clone(),
        engine.clone(),
        Box::new(rebuild),
    ));
    let notifier = notify::Notifier::from_env();
    tokio::spawn(reload_on_hangup(
        hangups,
        reloader.clone(),
        notifier.clone(),
    ));

    let local = if addr.ip().is_unspecified() {
        format!("{scheme}://127.0.0.1:{}", addr.port())
    } else {
        format!("{scheme}://{addr}")
    };
    let shown = match &cli.public_url {
        Some(u) => u.trim_end_matches('/').to_owned(),
        None => local.clone(),
    };
    let mut app = api::router(api::AppState {
        engine: engine.clone(),
        public_url: cli.public_url.clone(),
        scheme,
        reloader: Some(reloader),
    });
    if let Some((route, tree)) = image_tree {
        app = app.merge(images::router(&route, tree));
    }
    app = app.merge(ui::router(engine.clone(), sim));
    app = metrics::mark_routes(app.merge(metrics::router(metrics, engine.clone())));
    if let Some(a) = authenticator {
        app = auth::protect(app, a, cli.image_route.0.clone());
    }
    println!("pelagos-server listening on {local}");
    if let Some(d) = &demo {
        demo::print_usage(&shown, d);
    }
    info!("listening on {addr}");
    // systemd (Type=notify): started once the socket listens and the
    // engine runs; the watchdog pings only while the engine answers.
    notify::send(notifier.as_ref(), "READY=1");
    if let (Some(n), Some(interval)) = (&notifier, notify::watchdog_interval()) {
        info!("systemd watchdog: a ping every {interval:?}");
        tokio::spawn(notify::watchdog(n.clone(), engine.clone(), interval));
    }
    let stop = async {
        shutdown_signal().await;
        notify::send(notifier.as_ref(), "STOPPING=1");
    };
    serve::serve(listener, app, tls, limits(&cli), stop)
        .await
        .context("server failed")?;
    let n = engine.shutdown().await;
    info!("stopped; {n} running task(s) recorded as interrupted");
    Ok(())
}

/// The boot-record writer: image URLs name this server's port and image
/// route, unless the lab points them at another web server.
fn boot_records(cli: &Cli, lab: &LabConfig, tftp_dir: &std::path::Path, port: u16) -> BootRecords {
    // Production refuses image dirs a node cannot install from; the
    // simulated lab boots bare dirs (test suites make empty ones).
    let mut records = BootRecords::new(tftp_dir, lab)
        .with_server_port(port)
        .require_installable(cli.simulation.is_none());
    if let Some(route) = &cli.image_route.0 {
        records = records.with_image_route(route);
    } else if lab.pxe.image_base_url.trim().is_empty() {
        tracing::warn!(
            "--image-route none and no pxe.image_base_url: boot records name image URLs \
             nobody serves"
        );
    }
    info!(
        image_base_url = records.image_base_url(),
        "image URLs in boot records"
    );
    records
}

/// The simulated lab's drivers and timing (`--simulation`) and the lab
/// itself (the dashboard reads its power states), or the real ones with
/// the lab's timing.
fn drivers(
    cli: &Cli,
    lab: &Arc<LabConfig>,
    records: Arc<dyn BootRecordWriter>,
    state_dir: &std::path::Path,
) -> (Drivers, pelagos_config::Timing, Option<Arc<SimLab>>) {
    match cli.simulation {
        Some(mode) => {
            info!("simulation mode {mode:?}");
            let timing = mode.timing(&lab.timing);
            let sim = SimLab::new(mode, timing.clone(), state_dir.join("console"));
            (sim.drivers(records), timing, Some(sim))
        }
        None => {
            info!(
                ipmitool = %cli.ipmitool.display(),
                salt_ssh = %cli.salt_ssh.display(),
                conman_log_dir = %lab.conman_log_dir.display(),
                "production mode"
            );
            (
                Drivers::production(lab, records, production_options(cli)),
                lab.timing.clone(),
                None,
            )
        }
    }
}

/// What a reloaded lab is served with: boot-record settings swapped into
/// `swap`; the simulated lab's drivers as they are (the hardware keeps its
/// state: power, disks, the records its nodes boot from) with the new
/// timing, scaled; or production drivers built for the new lab (BMC
/// credentials, salt settings, console dir) with its timing.
fn reload_drivers(
    cli: &Cli,
    drivers: &Drivers,
    swap: Arc<SwapRecords>,
    tftp_dir: PathBuf,
    port: u16,
) -> impl Fn(&Arc<LabConfig>) -> (Drivers, pelagos_config::Timing) + Send + Sync + 'static {
    let cli = cli.clone();
    let sim_drivers = cli.simulation.map(|mode| (mode, drivers.clone()));
    move |lab: &Arc<LabConfig>| {
        swap.swap(Arc::new(boot_records(&cli, lab, &tftp_dir, port)));
        match &sim_drivers {
            Some((mode, d)) => (d.clone(), mode.timing(&lab.timing)),
            None => (
                Drivers::production(lab, swap.clone(), production_options(&cli)),
                lab.timing.clone(),
            ),
        }
    }
}

fn production_options(cli: &Cli) -> ProductionOptions {
    ProductionOptions {
        ipmitool: cli.ipmitool.clone(),
        salt_ssh: cli.salt_ssh.clone(),
        salt_priv_key: cli.salt_priv_key.clone(),
        salt_temp_dir: None,
    }
}

/// SIGHUP (`systemctl reload`): reload the lab config; a file that does not
/// load leaves the lab served as it was (the reloader logs why).
/// systemd hears `RELOADING=1` before and `READY=1` after: the unit reads
/// `reloading` meanwhile.
async fn reload_on_hangup(
    mut hangups: tokio::signal::unix::Signal,
    reloader: Arc<Reloader>,
    notifier: Option<Arc<notify::Notifier>>,
) {
    while hangups.recv().await.is_some() {
        info!("SIGHUP: reloading the lab config");
        notify::send(notifier.as_ref(), "RELOADING=1");
        let _ = reloader.reload().await;
        notify::send(notifier.as_ref(), "READY=1");
    }
}

fn limits(cli: &Cli) -> serve::Limits {
    serve::Limits {
        max_connections: cli.max_connections,
        max_connections_per_client: cli.max_connections_per_client,
        header_timeout: cli.header_timeout,
        body_timeout: cli.body_timeout,
        body_limit: cli.body_limit,
        shutdown_grace: cli.shutdown_grace,
    }
}

/// `--listen`, else port 5000 on every address, or on loopback only for
/// `--demo` (a demo must not offer reimaging to the network).
fn listen_addr(listen: Option<SocketAddr>, demo: bool) -> SocketAddr {
    listen.unwrap_or(if demo {
        SocketAddr::from(([127, 0, 0, 1], 5000))
    } else {
        SocketAddr::from(([0, 0, 0, 0], 5000))
    })
}

/// Ctrl-C or SIGTERM (systemd's stop). Provisions still running are recorded
/// as interrupted at the next start.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let term = async {
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
    info!("shutting down");
}

/// Every running provision follows its node's console log with an open file:
/// lift the soft open-files limit (often 1024) to the hard one.
fn raise_open_files_limit() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let lim = getrlimit(Resource::Nofile);
    if lim.current.is_some() && lim.current != lim.maximum {
        let new = Rlimit {
            current: lim.maximum,
            maximum: lim.maximum,
        };
        match setrlimit(Resource::Nofile, new) {
            Ok(()) => info!("open files limit raised to {:?}", lim.maximum),
            Err(e) => tracing::warn!("cannot raise the open files limit: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_listens_on_loopback_unless_told_otherwise() {
        assert_eq!(listen_addr(None, true).to_string(), "127.0.0.1:5000");
        assert_eq!(listen_addr(None, false).to_string(), "0.0.0.0:5000");
        let given: SocketAddr = "0.0.0.0:7000".parse().unwrap();
        assert_eq!(listen_addr(Some(given), true), given);
    }
}
