//! `inferd serve`: validate the configuration, load and warm up the models, then run every
//! listener until the shutdown signal has drained them.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use inferd_core::executor::Executor;
use inferd_core::registry::{LoadedModel, Registry};

use inferd_manager::management::Token;
use inferd_manager::reload::LoadRequest;
use inferd_manager::{LoadFn, Manager, ManagerConfig};

use crate::cli::ServeArgs;
use crate::{cpu_quota, fd_limit, loader, logging, shutdown, EXIT_CONFIG};

pub fn main(args: ServeArgs) -> ExitCode {
    if let Err(message) = args.validate().and_then(|()| logging::init(&args.log)) {
        eprintln!("inferd: {message}");
        return ExitCode::from(EXIT_CONFIG);
    }
    let started = Instant::now();
    let cpus = args
        .runtime
        .inference_threads
        .unwrap_or_else(cpu_quota::available_cpus);
    let io_threads = args.runtime.io_threads.unwrap_or(cpus);

    // Models load before any port is bound: a bad model is a bad configuration.
    let registry = Registry::new();
    let executor = Executor::new(cpus, args.runtime.max_queue);
    let manager = match load_models(&args, &registry, &executor) {
        Ok(manager) => manager,
        Err(e) => {
            tracing::error!(error = %e, error_type = e.kind.error_type(), "cannot load models");
            eprintln!("inferd: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let token = match management_token(&args) {
        Ok(token) => token,
        Err(message) => {
            eprintln!("inferd: {message}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    registry.set_ready(true);
    tracing::info!(
        elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
        "models loaded and warmed up"
    );

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(io_threads)
        .thread_name("inferd-io")
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("inferd: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args, registry, executor, manager, token)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "server failed");
            eprintln!("inferd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Loads what the command line names: a repository (returning its manager, which keeps it in
/// sync), one file, or the built-in model.
fn load_models(
    args: &ServeArgs,
    registry: &Registry,
    executor: &Executor,
) -> inferd_core::Result<Option<Manager>> {
    let m = &args.models;
    let load_timeout = Duration::from_secs_f64(m.model_load_timeout);
    if let Some(root) = &m.model_repository {
        let config = ManagerConfig {
            root: root.clone(),
            poll_interval: Duration::from_secs_f64(m.repository_poll_interval),
            default_model: m.default_model.clone(),
            load_timeout,
            scan_timeout: Duration::from_secs_f64(m.repository_scan_timeout),
        };
        let batching_executor = executor.clone();
        let load: LoadFn = Arc::new(move |request: &LoadRequest<'_>| {
            let model = loader::load_repository_file(request.root, request.file)?;
            loader::warm_up(model.as_ref())?;
            let loaded = LoadedModel::new(request.name, request.version, model);
            Ok(match &request.config.batching {
                Some(batching) => loaded.with_batching(batching, &batching_executor),
                None => loaded,
            })
        });
        let manager = Manager::new(config, registry.clone(), load).with_executor(executor.clone());
        // No async runtime exists yet: the manager runs its sync on a small one of its own.
        let report = manager.sync_blocking()?;
        // At start-up every model must load: a server that silently serves half its models
        // is worse than one that refuses to start. (Later failures keep the old version.)
        if let Some((name, version, e)) = report.failed.first() {
            let at = version.map(|v| format!(" version {v}")).unwrap_or_default();
            let hint = match e.kind {
                inferd_core::ErrorKind::DeadlineExceeded => " (--model-load-timeout)",
                _ => "",
            };
            return Err(inferd_core::Error::model_load(format!(
                "model '{name}'{at}: {e}{hint}"
            )));
        }
        if registry.snapshot().models.is_empty() {
            return Err(inferd_core::Error::model_load(
                "the model repository holds no model",
            ));
        }
        if let Some(name) = &m.default_model {
            registry.resolve(name, None)?;
        }
        return Ok(Some(manager));
    }
    let started = Instant::now();
    let (name, model) = match &m.model {
        Some(path) => {
            let name = match &m.model_name {
                Some(name) => name.clone(),
                None => path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .filter(|s| inferd_core::repository::check_model_name(s).is_ok())
                    .unwrap_or_else(|| "model".into()),
            };
            let path = path.clone();
            let model = loader::within(load_timeout, move || {
                let model = loader::load_file(&path)?;
                loader::warm_up(model.as_ref())?;
                Ok(model)
            })?;
            (name, model)
        }
        None => (
            m.model_name
                .clone()
                .unwrap_or_else(|| loader::BUILTIN_MODEL_NAME.into()),
            {
                let model = loader::load_builtin()?;
                loader::warm_up(model.as_ref())?;
                model
            },
        ),
    };
    tracing::info!(model = %name, platform = %model.metadata().platform, "model ready");
    let version = m.model_version;
    inferd_core::metrics::ModelLoaded {
        model: &name,
        version,
        elapsed: started.elapsed(),
        ok: true,
    }
    .emit();
    registry.insert(LoadedModel::new(name, version, model));
    Ok(None)
}

/// The management token, when the management API is enabled.
fn management_token(args: &ServeArgs) -> Result<Option<Token>, String> {
    let m = &args.management;
    if !m.management {
        return Ok(None);
    }
    let text = match (&m.management_token_file, &m.management_token) {
        (Some(file), _) => std::fs::read_to_string(file)
            .map_err(|_| "--management-token-file cannot be read".to_string())?,
        (None, Some(token)) => token.clone(),
        (None, None) => return Err("--management needs a token".into()),
    };
    Token::new(&text).map(Some)
}

async fn run(
    args: ServeArgs,
    registry: Registry,
    executor: Executor,
    manager: Option<Manager>,
    token: Option<Token>,
) -> anyhow::Result<()> {
    let host = args.listen.host;
    // Every port is bound before any is served: a port in use fails the start, not half of it.
    let bind = |port: u16, what: &'static str| async move {
        tokio::net::TcpListener::bind(SocketAddr::new(host, port))
            .await
            .with_context(|| format!("binding {what} port {port}"))
    };
    let http_listener = bind(args.listen.http_port, "HTTP").await?;
    let grpc_listener = bind(args.listen.grpc_port, "gRPC").await?;
    let metrics_listener = bind(args.listen.metrics_port, "metrics").await?;
    tracing::info!(
        http = %http_listener.local_addr()?,
        grpc = %grpc_listener.local_addr()?,
        metrics = %metrics_listener.local_addr()?,
        inference_threads = executor.threads(),
        "listening"
    );

    let shutdown = shutdown::watch_signals(
        registry.clone(),
        Duration::from_secs_f64(args.shutdown.shutdown_delay),
    );
    let grace = Duration::from_secs_f64(args.shutdown.shutdown_grace);
    let connections = args
        .connections
        .limits()
        .map_err(|message| anyhow::anyhow!(message))?;
    fd_limit::fit(connections.max_connections);

    if let Some(manager) = &manager {
        tokio::spawn(manager.clone().watch(shutdown.clone().draining()));
    }
    // The management API gets its own listener, so the inference port can never reach it.
    let management = match (manager, token) {
        (Some(manager), Some(token)) => {
            let addr = SocketAddr::new(host, args.management.management_port);
            let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
                format!(
                    "binding management port {}",
                    args.management.management_port
                )
            })?;
            tracing::info!(management = %listener.local_addr()?, "management API enabled");
            let app = inferd_manager::management::router(manager, token);
            let draining = shutdown.clone().draining();
            let limits = inferd_listener::ConnectionLimits {
                max_connections: MANAGEMENT_CONNECTIONS,
                ..connections.clone()
            };
            Some(tokio::spawn(inferd_listener::serve(
                listener,
                app,
                limits,
                "management",
                draining,
            )))
        }
        (None, Some(_)) => anyhow::bail!("--management needs --model-repository"),
        _ => None,
    };

    let l = &args.limits;
    let default_timeout = l.request_timeout.map(Duration::from_secs_f64);
    let http_config = inferd_http::HttpConfig {
        max_body_bytes: l.max_body_bytes,
        max_json_depth: l.max_json_depth,
        max_tensor_elements: l.max_tensor_elements,
        max_rows: l.max_rows,
        default_timeout,
    };
    let grpc_config = inferd_grpc::GrpcConfig {
        max_message_bytes: l.max_grpc_message_bytes,
        max_tensor_elements: l.max_tensor_elements,
        max_rows: l.max_rows,
        default_timeout,
        // Both protocols describe one server.
        extensions: inferd_http::v2::EXTENSIONS
            .iter()
            .map(|e| (*e).to_owned())
            .collect(),
        connections: connections.clone(),
    };
    let grpc = {
        let state = inferd_grpc::GrpcState::new(registry.clone(), executor.clone());
        let draining = shutdown.clone().draining();
        tokio::spawn(async move {
            inferd_grpc::serve(state, &grpc_config, grpc_listener, draining).await
        })
    };
    probe_thread(metrics_listener, registry.clone(), &connections)?;
    let app = inferd_http::app(inferd_http::AppState::new(registry, executor, http_config));
    let draining = shutdown.clone().draining();
    let http = tokio::spawn(inferd_listener::serve(
        http_listener,
        app,
        connections,
        "http",
        draining,
    ));

    shutdown.draining().await;
    let drained = tokio::time::timeout(grace, async {
        http.await.context("HTTP server task")?;
        grpc.await.context("gRPC server task")?;
        anyhow::Ok(())
    });
    match drained.await {
        Ok(result) => result?,
        Err(_) => {
            anyhow::bail!("in-flight requests did not finish within the {grace:?} grace period")
        }
    }
    // The metrics and probe thread stays up while draining, so the last scrape sees the
    // drain; it ends with the process.
    if let Some(task) = management {
        let _ = tokio::time::timeout(Duration::from_secs(1), task).await;
    }
    tracing::info!("drained; exiting");
    Ok(())
}

/// Connections the management port accepts at once: a few operators and their scripts.
const MANAGEMENT_CONNECTIONS: usize = 64;

/// Connections the metrics port accepts at once: scrapers and probes.
const METRICS_CONNECTIONS: usize = 256;

/// Serves `/metrics` and the health probes on the metrics port, from a thread and an async
/// runtime of their own: under overload the inference port's workers are busy with requests,
/// and a probe or a scrape queued behind them would time out and get a healthy pod restarted.
fn probe_thread(
    listener: tokio::net::TcpListener,
    registry: Registry,
    connections: &inferd_listener::ConnectionLimits,
) -> anyhow::Result<()> {
    let listener = listener.into_std().context("metrics listener")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the metrics thread's runtime")?;
    let app =
        inferd_http::probe_routes(registry).route("/metrics", axum::routing::get(metrics_text));
    let limits = inferd_listener::ConnectionLimits {
        max_connections: METRICS_CONNECTIONS,
        ..connections.clone()
    };
    std::thread::Builder::new()
        .name("inferd-metrics".into())
        .spawn(move || {
            runtime.block_on(async move {
                match tokio::net::TcpListener::from_std(listener) {
                    Ok(listener) => {
                        inferd_listener::serve(
                            listener,
                            app,
                            limits,
                            "metrics",
                            std::future::pending(),
                        )
                        .await
                    }
                    Err(e) => tracing::error!(error = %e, "the metrics port cannot be served"),
                }
            })
        })
        .context("starting the metrics thread")?;
    Ok(())
}

async fn metrics_text() -> impl axum::response::IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            inferd_core::metrics::CONTENT_TYPE,
        )],
        inferd_core::metrics::render(),
    )
}
