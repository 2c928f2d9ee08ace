//! Jobs a service runs on a timer beside its servers, such as applying the
//! retention schedule once a day.

use std::future::Future;
use std::time::Duration;

/// Runs `job` now and then every `interval` until `shutdown`; a run in
/// progress when shutdown comes is finished first. The job reports its own
/// failures: the next run is the retry.
pub async fn every<F, Fut>(interval: Duration, shutdown: impl Future<Output = ()> + Send, mut job: F)
where
    F: FnMut() -> Fut + Send,
    Fut: Future<Output = ()> + Send,
{
    tokio::pin!(shutdown);
    loop {
        job().await;
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_at_once_then_each_interval_until_shutdown() {
        let (runs, mut ran) = tokio::sync::mpsc::unbounded_channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(every(
            Duration::from_millis(10),
            async {
                let _ = stopped.await;
            },
            move || {
                let runs = runs.clone();
                async move {
                    let _ = runs.send(());
                }
            },
        ));
        for _ in 0..3 {
            tokio::time::timeout(Duration::from_secs(5), ran.recv())
                .await
                .expect("the job runs again")
                .expect("the job is alive");
        }
        let _ = stop.send(());
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("stops on shutdown")
            .expect("no panic");
    }
}
