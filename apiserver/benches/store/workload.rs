//! Store-agnostic load generators: closed-loop writers, latency samples, a pod-sized value.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A JSON Pod of about 2 KiB, as kube-apiserver stores them (real pods with a few
/// containers, env and status run 2-4 KiB).
pub fn pod_value(name: &str) -> Vec<u8> {
    let mut pod = format!(
        r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"{name}","namespace":"bench","uid":"6f1c7f6e-2b4a-4a58-9a0e-3d1f0c6a0001","labels":{{"app":"bench","tier":"backend"}},"annotations":{{"note":"#
    );
    let filler = "x".repeat(2048usize.saturating_sub(pod.len() + 200));
    pod.push_str(&format!(
        r#""{filler}"}}}},"spec":{{"containers":[{{"name":"app","image":"registry.local/app:1.0","ports":[{{"containerPort":8080}}]}}],"restartPolicy":"Always"}},"status":{{"phase":"Pending"}}}}"#
    ));
    pod.into_bytes()
}

/// What a closed-loop write run achieved.
#[derive(Debug, Clone, Copy)]
pub struct Rate {
    pub clients: usize,
    pub ops: u64,
    pub seconds: f64,
}

impl Rate {
    pub fn per_second(&self) -> f64 {
        self.ops as f64 / self.seconds
    }
}

/// Runs `clients` closed-loop writers for `duration`: each awaits its write, then issues
/// the next. `op(client, seq)` performs one write; every write must succeed.
pub async fn closed_loop<F, Fut>(clients: usize, duration: Duration, op: F) -> anyhow::Result<Rate>
where
    F: Fn(usize, u64) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|client| {
            let (stop, done, op) = (stop.clone(), done.clone(), op.clone());
            tokio::spawn(async move {
                let mut seq = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    op(client, seq).await?;
                    seq += 1;
                    done.fetch_add(1, Ordering::Relaxed);
                }
                anyhow::Ok(())
            })
        })
        .collect();
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await??;
    }
    // Writes that finish after the stop are counted along with the time they took.
    Ok(Rate {
        clients,
        ops: done.load(Ordering::Relaxed),
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct Latency {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub mean_ms: f64,
}

/// Times `samples` sequential runs of `op`.
pub async fn latency<F, Fut>(samples: usize, mut op: F) -> anyhow::Result<Latency>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let mut times = Vec::with_capacity(samples);
    for _ in 0..samples {
        let start = Instant::now();
        op().await?;
        times.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    let pick = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    Ok(Latency {
        p50_ms: pick(0.5),
        p99_ms: pick(0.99),
        mean_ms: times.iter().sum::<f64>() / times.len() as f64,
    })
}
