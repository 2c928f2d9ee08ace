//! The `switchboard` binary as a child process, for tests that kill a service
//! outright (SIGKILL: no shutdown, no flush) and start it again.

use std::{net::SocketAddr, path::PathBuf, process::Stdio, sync::OnceLock, time::Duration};

use anyhow::{Context, bail};
use tokio::process::{Child, Command};

/// The binary next to this test executable, built first if needed (a no-op
/// when `cargo test` has built it already).
pub fn switchboard_binary() -> anyhow::Result<PathBuf> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
            let status = std::process::Command::new(cargo)
                .args(["build", "--quiet", "-p", "switchboard", "--bin", "switchboard"])
                .status()
                .map_err(|error| format!("cannot run cargo build: {error}"))?;
            if !status.success() {
                return Err(format!("cargo build of the switchboard binary failed: {status}"));
            }
            // <target>/debug/deps/<test> → <target>/debug/switchboard
            let test_executable = std::env::current_exe().map_err(|error| error.to_string())?;
            let profile_dir = test_executable
                .parent()
                .and_then(|deps| deps.parent())
                .ok_or("unexpected test executable location")?;
            let binary = profile_dir.join("switchboard");
            if binary.is_file() {
                Ok(binary)
            } else {
                Err(format!("no binary at {}", binary.display()))
            }
        })
        .clone()
        .map_err(anyhow::Error::msg)
}

/// A free port on the loopback interface. The port is released before the
/// child binds it, so another process could take it first; on this single test
/// machine that window is harmless.
pub fn free_port() -> anyhow::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?)
}

/// A `switchboard serve <service>` or `switchboard up` child process.
#[derive(Debug)]
pub struct ServiceProcess {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    child: Child,
}

impl ServiceProcess {
    /// `switchboard serve <service>`, once `/readyz` answers 200.
    pub async fn start(service: &str, environment: &[(&str, String)]) -> anyhow::Result<ServiceProcess> {
        ServiceProcess::run(&["serve", service], environment).await
    }

    /// `switchboard serve <service>`, once `/healthz` answers 200: for a
    /// process that is up but not ready, such as a router standing by.
    pub async fn start_live(service: &str, environment: &[(&str, String)]) -> anyhow::Result<ServiceProcess> {
        ServiceProcess::spawn(&["serve", service], environment, "/healthz").await
    }

    /// Whether `/readyz` answers 200 now.
    pub async fn is_ready(&self) -> bool {
        let url = format!("http://{}/readyz", self.http_addr);
        matches!(reqwest::get(&url).await, Ok(response) if response.status().is_success())
    }

    /// `switchboard up` (the whole system in one process), once `/readyz`
    /// answers 200.
    pub async fn up(environment: &[(&str, String)]) -> anyhow::Result<ServiceProcess> {
        ServiceProcess::run(&["up"], environment).await
    }

    async fn run(arguments: &[&str], environment: &[(&str, String)]) -> anyhow::Result<ServiceProcess> {
        ServiceProcess::spawn(arguments, environment, "/readyz").await
    }

    async fn spawn(
        arguments: &[&str],
        environment: &[(&str, String)],
        probe: &str,
    ) -> anyhow::Result<ServiceProcess> {
        let grpc_addr = free_port()?;
        let http_addr = free_port()?;
        let mut command = Command::new(switchboard_binary()?);
        command
            .args(arguments)
            .env("SWITCHBOARD_GRPC_ADDR", grpc_addr.to_string())
            .env("SWITCHBOARD_HTTP_ADDR", http_addr.to_string())
            .env("SWITCHBOARD_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        for (key, value) in environment {
            command.env(key, value);
        }
        let child = command.spawn().context("cannot start switchboard")?;
        let mut process = ServiceProcess {
            grpc_addr,
            http_addr,
            child,
        };
        process.wait_for(probe).await?;
        Ok(process)
    }

    async fn wait_for(&mut self, probe: &str) -> anyhow::Result<()> {
        let url = format!("http://{}{probe}", self.http_addr);
        let http = reqwest::Client::new();
        for _ in 0..300 {
            if let Some(status) = self.child.try_wait()? {
                bail!("switchboard exited before it was ready: {status}");
            }
            if let Ok(response) = http.get(&url).send().await
                && response.status().is_success()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("switchboard did not become ready at {url}")
    }

    /// SIGKILL: the process gets no chance to finish anything.
    pub async fn kill(mut self) -> anyhow::Result<()> {
        self.child.start_kill()?;
        self.child.wait().await?;
        Ok(())
    }

    /// SIGTERM, then wait for a graceful exit.
    pub async fn terminate(mut self) -> anyhow::Result<std::process::ExitStatus> {
        let pid = self.child.id().context("the process has already exited")?;
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()?;
        if !status.success() {
            bail!("kill -TERM {pid} failed");
        }
        Ok(tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await??)
    }
}
