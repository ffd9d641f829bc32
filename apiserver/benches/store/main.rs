//! Store benchmark: `cargo bench -p minik8s-apiserver --bench store`.
//!
//! Measures the sled store and, in the same run, a real etcd (when installed) under the
//! same load: durable creates/s with 1, 16 and 64 closed-loop clients (~2 KiB pods; the two
//! alternate level by level, best of two runs each), list latency over 10,000 keys, and
//! watch fan-out (events/s delivered to 100 watchers).
//! Prints a table and writes the figures to `target/bench/store.json`.
//! `STORE_BENCH_SECS` sets the seconds per write level (default 5).

mod etcd_peer;
mod workload;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use minik8s_apiserver::storage::{ListOptions, SledStorage, Storage};
use serde_json::{json, Value};

use etcd_peer::EtcdProcess;
use workload::{closed_loop, latency, pod_value, Latency, Rate};

const LEVELS: [usize; 3] = [1, 16, 64];
const LIST_KEYS: usize = 10_000;
const LIST_SAMPLES: usize = 30;
/// kubectl and client-go list in chunks of 500.
const PAGE: usize = 500;
const WATCHERS: usize = 100;
const WATCH_EVENTS: usize = 2_000;
/// Each write level runs this many times per store; the best run counts.
const ROUNDS: usize = 2;

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let secs: u64 = std::env::var("STORE_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let duration = Duration::from_secs(secs);
    let value = Arc::new(pod_value("bench-pod-0000"));

    // etcd runs alongside, and the two are measured level by level in alternation (best
    // of ROUNDS each), so both see the same disk and CPU conditions on a shared machine.
    let etcd = match etcd_peer::etcd_binary() {
        Some(binary) => Some(EtcdProcess::start(binary).await?),
        None => {
            eprintln!("etcd is not installed: measuring the sled store only");
            None
        }
    };
    let dir = tempfile::tempdir()?;
    let store = SledStorage::open(dir.path())?;
    let mut ours: Vec<SledLevel> = Vec::new();
    let mut etcd_rates: Vec<Rate> = Vec::new();
    for clients in LEVELS {
        let mut best: Option<SledLevel> = None;
        let mut best_etcd: Option<Rate> = None;
        for round in 0..ROUNDS {
            let level = sled_level(&store, clients, round, duration, &value).await?;
            if best
                .as_ref()
                .is_none_or(|b| level.rate.per_second() > b.rate.per_second())
            {
                best = Some(level);
            }
            if let Some(etcd) = &etcd {
                let rate = etcd_puts(etcd, clients, round, duration, &value).await?;
                if best_etcd.is_none_or(|b| rate.per_second() > b.per_second()) {
                    best_etcd = Some(rate);
                }
            }
        }
        ours.extend(best);
        etcd_rates.extend(best_etcd);
    }
    let ours_list = sled_list(&store, &value).await?;
    let ours_watch = sled_fanout(&store, &value).await?;
    drop(store);
    let peer = match &etcd {
        Some(etcd) => Some(PeerFigures {
            rates: etcd_rates,
            list: etcd_list(&etcd.client().await?, &value).await?,
            watch: etcd_fanout(etcd, &value).await?,
        }),
        None => None,
    };
    drop(etcd);
    let report = report(secs, &ours, &ours_list, ours_watch, peer.as_ref());
    print_table(&report);
    let path = output_path();
    std::fs::create_dir_all(path.parent().context("output dir")?)?;
    std::fs::write(&path, serde_json::to_vec_pretty(&report)?)?;
    println!("\nwrote {}", path.display());
    Ok(())
}

struct PeerFigures {
    rates: Vec<Rate>,
    list: (Latency, Latency),
    watch: f64,
}

/// One write level of the sled store, with what its group commits looked like.
struct SledLevel {
    rate: Rate,
    writes_per_fsync: f64,
    flush_us: f64,
}

async fn sled_level(
    store: &SledStorage,
    clients: usize,
    round: usize,
    duration: Duration,
    value: &Arc<Vec<u8>>,
) -> anyhow::Result<SledLevel> {
    let (flushes, writes) = (store.flush_count(), store.write_count());
    let (apply, flush) = store.commit_micros();
    let value = value.clone();
    let writer = store.clone();
    let rate = closed_loop(clients, duration, move |client, seq| {
        let (store, value) = (writer.clone(), value.clone());
        async move {
            let key = format!("/registry/pods/bench/r{round}-c{clients}-{client}-{seq}");
            store.create(&key, value.to_vec()).await?;
            Ok(())
        }
    })
    .await?;
    let commits = (store.flush_count() - flushes).max(1) as f64;
    let (apply2, flush2) = store.commit_micros();
    let level = SledLevel {
        rate,
        writes_per_fsync: (store.write_count() - writes) as f64 / commits,
        flush_us: (flush2 - flush) as f64 / commits,
    };
    eprintln!(
        "sled  {clients:>2} clients: {:>9.0} creates/s ({:.1} writes/fsync; per commit: apply {:.0} us, flush {:.0} us)",
        rate.per_second(),
        level.writes_per_fsync,
        (apply2 - apply) as f64 / commits,
        level.flush_us,
    );
    Ok(level)
}

async fn sled_list(
    store: &SledStorage,
    value: &Arc<Vec<u8>>,
) -> anyhow::Result<(Latency, Latency)> {
    let prefix = "/registry/pods/list10k/";
    let store = Arc::new(store.clone());
    fill(LIST_KEYS, {
        let (store, value) = (store.clone(), value.clone());
        move |i| {
            let (store, value) = (store.clone(), value.clone());
            async move {
                store
                    .create(&format!("{prefix}{i:05}"), value.to_vec())
                    .await?;
                Ok(())
            }
        }
    })
    .await?;
    let full = latency(LIST_SAMPLES, || async {
        let page = store
            .list(ListOptions {
                prefix,
                start_after: None,
                limit: 0,
            })
            .await?;
        anyhow::ensure!(
            page.items.len() == LIST_KEYS,
            "listed {} keys",
            page.items.len()
        );
        Ok(())
    })
    .await?;
    let paged = latency(LIST_SAMPLES, || async {
        let page = store
            .list(ListOptions {
                prefix,
                start_after: None,
                limit: PAGE,
            })
            .await?;
        anyhow::ensure!(page.items.len() == PAGE && page.more, "bad page");
        Ok(())
    })
    .await?;
    Ok((full, paged))
}

/// Writes `n` keys with 64 concurrent writers.
async fn fill<F, Fut>(n: usize, op: F) -> anyhow::Result<()>
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let tasks: Vec<_> = (0..64)
        .map(|w| {
            let op = op.clone();
            tokio::spawn(async move {
                for i in (w..n).step_by(64) {
                    op(i).await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    Ok(())
}

/// 100 watchers on one prefix, then WATCH_EVENTS creates by 64 writers: events delivered
/// per second across all watchers, from the first write to the last delivery.
async fn sled_fanout(store: &SledStorage, value: &Arc<Vec<u8>>) -> anyhow::Result<f64> {
    let prefix = "/registry/pods/watch/";
    let mut watchers = Vec::new();
    for _ in 0..WATCHERS {
        let mut stream = store.watch(prefix, store.current_revision()).await?;
        watchers.push(tokio::spawn(async move {
            for _ in 0..WATCH_EVENTS {
                stream.next().await.context("watch ended")??;
            }
            anyhow::Ok(())
        }));
    }
    let start = Instant::now();
    let store = store.clone();
    let value = value.clone();
    fill(WATCH_EVENTS, move |i| {
        let (store, value) = (store.clone(), value.clone());
        async move {
            store
                .create(&format!("{prefix}{i:05}"), value.to_vec())
                .await?;
            Ok(())
        }
    })
    .await?;
    await_watchers(watchers).await?;
    Ok((WATCHERS * WATCH_EVENTS) as f64 / start.elapsed().as_secs_f64())
}

async fn await_watchers(
    watchers: Vec<tokio::task::JoinHandle<anyhow::Result<()>>>,
) -> anyhow::Result<()> {
    for watcher in watchers {
        tokio::time::timeout(Duration::from_secs(120), watcher)
            .await
            .context("a watcher did not receive every event within 120s")???;
    }
    Ok(())
}

async fn etcd_puts(
    etcd: &EtcdProcess,
    clients: usize,
    round: usize,
    duration: Duration,
    value: &Arc<Vec<u8>>,
) -> anyhow::Result<Rate> {
    // One client (one HTTP/2 connection) per 8 writers, as etcd's own benchmark tool
    // spreads its clients over a few connections.
    let mut conns = Vec::new();
    for _ in 0..clients.div_ceil(8) {
        conns.push(etcd.client().await?);
    }
    let value = value.clone();
    let rate = closed_loop(clients, duration, move |c, seq| {
        let mut kv = conns[c % conns.len()].kv_client();
        let value = value.to_vec();
        async move {
            let key = format!("/registry/pods/bench/r{round}-c{clients}-{c}-{seq}");
            kv.put(key, value, None).await?;
            Ok(())
        }
    })
    .await?;
    eprintln!(
        "etcd  {clients:>2} clients: {:>9.0} puts/s",
        rate.per_second()
    );
    Ok(rate)
}

async fn etcd_list(
    client: &etcd_client::Client,
    value: &Arc<Vec<u8>>,
) -> anyhow::Result<(Latency, Latency)> {
    let prefix = "/registry/pods/list10k/";
    let put_client = client.clone();
    let value = value.clone();
    fill(LIST_KEYS, move |i| {
        let mut kv = put_client.kv_client();
        let value = value.to_vec();
        async move {
            kv.put(format!("{prefix}{i:05}"), value, None).await?;
            Ok(())
        }
    })
    .await?;
    let full = latency(LIST_SAMPLES, || {
        // 10k pods are ~20 MiB; tonic's default 4 MiB limit would refuse them.
        let mut kv = client.kv_client().max_decoding_message_size(256 << 20);
        async move {
            let resp = kv
                .get(prefix, Some(etcd_client::GetOptions::new().with_prefix()))
                .await?;
            anyhow::ensure!(
                resp.kvs().len() == LIST_KEYS,
                "etcd listed {}",
                resp.kvs().len()
            );
            Ok(())
        }
    })
    .await?;
    let paged = latency(LIST_SAMPLES, || {
        let mut kv = client.kv_client();
        async move {
            let options = etcd_client::GetOptions::new()
                .with_prefix()
                .with_limit(PAGE as i64);
            let resp = kv.get(prefix, Some(options)).await?;
            anyhow::ensure!(resp.kvs().len() == PAGE, "etcd paged {}", resp.kvs().len());
            Ok(())
        }
    })
    .await?;
    Ok((full, paged))
}

async fn etcd_fanout(etcd: &EtcdProcess, value: &Arc<Vec<u8>>) -> anyhow::Result<f64> {
    let prefix = "/registry/pods/watch/";
    // Ten watchers share a connection, as ten informers in one process would.
    let mut conns = Vec::new();
    for _ in 0..WATCHERS / 10 {
        conns.push(etcd.client().await?);
    }
    let mut watchers = Vec::new();
    for w in 0..WATCHERS {
        let mut client = conns[w % conns.len()].clone();
        let mut stream = client
            .watch(prefix, Some(etcd_client::WatchOptions::new().with_prefix()))
            .await?;
        watchers.push(tokio::spawn(async move {
            let _keep = client;
            let mut seen = 0;
            while seen < WATCH_EVENTS {
                let resp = stream.message().await?.context("etcd watch ended")?;
                seen += resp.events().len();
            }
            anyhow::Ok(())
        }));
    }
    let client = etcd.client().await?;
    let value = value.clone();
    let start = Instant::now();
    fill(WATCH_EVENTS, move |i| {
        let mut kv = client.kv_client();
        let value = value.to_vec();
        async move {
            kv.put(format!("{prefix}{i:05}"), value, None).await?;
            Ok(())
        }
    })
    .await?;
    await_watchers(watchers).await?;
    Ok((WATCHERS * WATCH_EVENTS) as f64 / start.elapsed().as_secs_f64())
}

fn latency_json(l: &Latency) -> Value {
    json!({"p50_ms": l.p50_ms, "p99_ms": l.p99_ms, "mean_ms": l.mean_ms})
}

fn report(
    secs: u64,
    ours: &[SledLevel],
    ours_list: &(Latency, Latency),
    ours_watch: f64,
    peer: Option<&PeerFigures>,
) -> Value {
    let mut creates = serde_json::Map::new();
    for (i, level) in ours.iter().enumerate() {
        let rate = &level.rate;
        let etcd = peer.map(|p| p.rates[i].per_second());
        creates.insert(
            rate.clients.to_string(),
            json!({
                "sled_per_s": rate.per_second(),
                "sled_writes_per_fsync": level.writes_per_fsync,
                "sled_flush_us_per_commit": level.flush_us,
                "etcd_per_s": etcd,
                "ratio_sled_over_etcd": etcd.map(|e| rate.per_second() / e),
            }),
        );
    }
    json!({
        "benchmark": "minik8s store",
        "value_bytes": pod_value("bench-pod-0000").len(),
        "seconds_per_level": secs,
        "rounds_per_level_best_of": ROUNDS,
        "durable_creates": creates,
        "list_10k": {
            "keys": LIST_KEYS,
            "sled_full": latency_json(&ours_list.0),
            "sled_page_500": latency_json(&ours_list.1),
            "etcd_full": peer.map(|p| latency_json(&p.list.0)),
            "etcd_page_500": peer.map(|p| latency_json(&p.list.1)),
        },
        "watch_fanout": {
            "watchers": WATCHERS,
            "events": WATCH_EVENTS,
            "sled_events_per_s": ours_watch,
            "etcd_events_per_s": peer.map(|p| p.watch),
        },
        "etcd_measured": peer.is_some(),
    })
}

fn print_table(report: &Value) {
    let num = |v: &Value| v.as_f64().map_or("-".to_string(), |x| format!("{x:.0}"));
    let ms = |v: &Value| v.as_f64().map_or("-".to_string(), |x| format!("{x:.2}"));
    println!(
        "\n{:<34} {:>16} {:>16} {:>10}",
        "durable creates/s (2 KiB)", "sled", "etcd", "sled/etcd"
    );
    for clients in LEVELS {
        let row = &report["durable_creates"][clients.to_string()];
        let ratio = row["ratio_sled_over_etcd"]
            .as_f64()
            .map_or("-".to_string(), |r| format!("{r:.2}"));
        println!(
            "{:<34} {:>16} {:>16} {:>10}",
            format!(
                "  {clients} clients ({:.1} writes/fsync)",
                row["sled_writes_per_fsync"].as_f64().unwrap_or(0.0)
            ),
            num(&row["sled_per_s"]),
            num(&row["etcd_per_s"]),
            ratio
        );
    }
    let list = &report["list_10k"];
    println!(
        "{:<34} {:>16} {:>16}",
        "list 10k keys p50 / p99 (ms)", "sled", "etcd"
    );
    for (label, ours, theirs) in [
        ("  full list", "sled_full", "etcd_full"),
        ("  first page of 500", "sled_page_500", "etcd_page_500"),
    ] {
        println!(
            "{:<34} {:>16} {:>16}",
            label,
            format!(
                "{} / {}",
                ms(&list[ours]["p50_ms"]),
                ms(&list[ours]["p99_ms"])
            ),
            format!(
                "{} / {}",
                ms(&list[theirs]["p50_ms"]),
                ms(&list[theirs]["p99_ms"])
            ),
        );
    }
    let watch = &report["watch_fanout"];
    println!(
        "{:<34} {:>16} {:>16}",
        "watch fan-out, events/s to 100",
        num(&watch["sled_events_per_s"]),
        num(&watch["etcd_events_per_s"])
    );
}

fn output_path() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            // The workspace's target dir, one level above this crate.
            let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
            manifest.parent().unwrap_or(&manifest).join("target")
        });
    target.join("bench").join("store.json")
}
