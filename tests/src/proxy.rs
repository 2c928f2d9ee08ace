//! A TCP proxy that can be cut: RabbitMQ "goes away" for one system under test
//! while the broker itself keeps serving every other test.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use tokio::{
    net::{TcpListener, TcpStream},
    sync::watch,
};

/// Forwards connections from a local port to `upstream` until [`TcpProxy::cut`];
/// while cut, it drops every open connection and refuses new ones (accepts and
/// closes at once, as a broker that is down would look to a client).
#[derive(Debug)]
pub struct TcpProxy {
    pub address: SocketAddr,
    up: Arc<AtomicBool>,
    /// Bumped on every cut so live connections notice and close.
    generation: watch::Sender<u64>,
}

impl TcpProxy {
    pub async fn start(upstream: SocketAddr) -> std::io::Result<TcpProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let up = Arc::new(AtomicBool::new(true));
        let (generation, _) = watch::channel(0u64);
        let accept_up = up.clone();
        let accept_generation = generation.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if !accept_up.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let mut cut = accept_generation.subscribe();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let mut client = client;
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Ok(TcpProxy {
            address,
            up,
            generation,
        })
    }

    /// The broker is gone: open connections drop, new ones are refused.
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.generation.send_modify(|generation| *generation += 1);
    }

    /// The broker is back.
    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }

    /// An AMQP URL through this proxy.
    pub fn amqp_url(&self) -> String {
        format!("amqp://guest:guest@{}/%2f", self.address)
    }
}
