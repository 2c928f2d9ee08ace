//! Telling every task to stop.
//!
//! One [`Shutdown`] per process, cloned into every server and worker. It
//! fires once, on SIGTERM or SIGINT ([`Shutdown::on_signals`]) or when
//! something calls [`Shutdown::trigger`] (a test, a fatal error), and every
//! clone's [`Shutdown::wait`] then completes. Servers stop accepting, finish
//! what is in flight and return; workers stop taking new messages.
//!
//! Built on a `watch` channel rather than mini-redis's `broadcast`: a clone
//! made *after* the trigger still sees it, so a task started late during
//! shutdown does not wait forever.

use std::sync::Arc;

use tokio::sync::watch;

/// A cloneable stop signal.
#[derive(Debug, Clone)]
pub struct Shutdown {
    /// Shared so that any clone can trigger; the value only goes false → true.
    sender: Arc<watch::Sender<bool>>,
    receiver: watch::Receiver<bool>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown::new()
    }
}

impl Shutdown {
    /// A signal that fires only when triggered.
    pub fn new() -> Shutdown {
        let (sender, receiver) = watch::channel(false);
        Shutdown {
            sender: Arc::new(sender),
            receiver,
        }
    }

    /// A signal that also fires on SIGTERM (what systemd, Kubernetes and
    /// `docker stop` send) or SIGINT (Ctrl-C). Must be called inside a Tokio
    /// runtime: it spawns the task that listens.
    pub fn on_signals() -> Shutdown {
        let shutdown = Shutdown::new();
        let trigger = shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                signal = wait_for_signal() => {
                    tracing::info!(signal, "shutdown requested");
                    trigger.trigger();
                }
                () = trigger.wait() => {}
            }
        });
        shutdown
    }

    /// Fires the signal for every clone. Idempotent.
    pub fn trigger(&self) {
        self.sender.send_replace(true);
    }

    pub fn is_triggered(&self) -> bool {
        *self.receiver.borrow()
    }

    /// Completes once the signal has fired (at once if it already has).
    pub async fn wait(&self) {
        let mut receiver = self.receiver.clone();
        // The sender lives as long as `self`, so `wait_for` cannot fail while
        // we wait; were it to, stopping is the safe reading.
        let _ = receiver.wait_for(|triggered| *triggered).await;
    }

    /// [`Self::wait`] as an owned future, for APIs that take a `'static`
    /// shutdown future (`serve_with_incoming_shutdown`, `with_graceful_shutdown`).
    pub fn wait_owned(&self) -> impl Future<Output = ()> + Send + 'static {
        let shutdown = self.clone();
        async move { shutdown.wait().await }
    }
}

#[cfg(unix)]
async fn wait_for_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let terminate = signal(SignalKind::terminate());
    let interrupt = signal(SignalKind::interrupt());
    match (terminate, interrupt) {
        (Ok(mut terminate), Ok(mut interrupt)) => tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
        },
        _ => {
            tracing::warn!("cannot listen for SIGTERM; stopping on Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
            "SIGINT"
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() -> &'static str {
    let _ = tokio::signal::ctrl_c().await;
    "ctrl-c"
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn every_clone_sees_the_trigger_even_clones_made_afterwards() {
        let shutdown = Shutdown::new();
        let early = shutdown.clone();
        let waiter = tokio::spawn(async move { early.wait().await });
        assert!(!shutdown.is_triggered());
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!waiter.is_finished(), "nothing fired yet");

        shutdown.clone().trigger();
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken")
            .expect("task");
        let late = shutdown.clone();
        tokio::time::timeout(Duration::from_secs(5), late.wait())
            .await
            .expect("already fired");
        tokio::time::timeout(Duration::from_secs(5), shutdown.wait_owned())
            .await
            .expect("owned");
        assert!(late.is_triggered());
        shutdown.trigger();
    }

    #[tokio::test]
    async fn a_signal_fires_it() {
        let shutdown = Shutdown::on_signals();
        // Let the listener install its handlers before the signal is sent;
        // until then SIGTERM's default action would end the test process.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let pid = std::process::id().to_string();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs");
        assert!(status.success());
        tokio::time::timeout(Duration::from_secs(5), shutdown.wait())
            .await
            .expect("SIGTERM fires shutdown");
    }
}
