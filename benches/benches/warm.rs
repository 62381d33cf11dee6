//! The warm tier against bare server commands on the same bytes, same run (issue 5):
//! pushing a 1%-changed delta to Redis vs one bare `SET`; a full snapshot to Redis vs
//! pipelined bulk `SET`s of the same chunks, and to PostgreSQL vs a bare binary `COPY`;
//! and the same puts and gets on a Redis Cluster (`BINDSPACE_TEST_REDIS_CLUSTER_URL`)
//! beside the single server (issue 19).
//! Needs `BINDSPACE_TEST_REDIS_URL` and `BINDSPACE_TEST_PG_URL` (`cargo xtask services
//! up` prints them); a missing one skips its benches with a message.

use std::time::Duration;

use bindspace_catalog::{ArtifactId, BackupStore};
use bindspace_core::workload::Workload;
use bindspace_core::{SchemaVersion, snapshot};
use bindspace_store_pg::{PgBackupStore, PgOptions};
use bindspace_store_redis::{RedisBackupStore, RedisOptions};
use bindspace_xor_delta as xd;
use criterion::{Criterion, criterion_group, criterion_main};

fn warm(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let mut w = Workload::new(1, SchemaVersion::CURRENT);
    let mut space = w.filled_space(1.0).expect("valid");
    let full = bytes::Bytes::from(snapshot::encode(&space, 0));
    let mark = space.mark();
    w.touch_occupied(&mut space, 655, 4)
        .expect("1% of addresses change");
    let delta = bytes::Bytes::from(xd::encode(
        &xd::compute_dirty(&space, &mark, 0).expect("delta"),
    ));
    let chunk = 4 << 20;
    let mut g = c.benchmark_group("warm");
    g.sample_size(10).measurement_time(Duration::from_secs(10));

    match std::env::var("BINDSPACE_TEST_REDIS_URL") {
        Err(_) => eprintln!("warm: BINDSPACE_TEST_REDIS_URL not set, Redis benches skipped"),
        Ok(url) => {
            let store = rt
                .block_on(RedisBackupStore::connect(
                    &url,
                    RedisOptions {
                        prefix: format!("bench-{}:", std::process::id()),
                        ..RedisOptions::default()
                    },
                ))
                .expect("redis");
            let mut con = rt
                .block_on(
                    redis::Client::open(url.as_str())
                        .expect("url")
                        .get_multiplexed_async_connection(),
                )
                .expect("connect");
            g.bench_function("redis_delta_push_1pct", |b| {
                b.iter(|| {
                    rt.block_on(store.put(ArtifactId::delta(1, 2), delta.clone()))
                        .expect("put")
                })
            });
            g.bench_function("redis_bare_set_delta", |b| {
                b.iter(|| {
                    rt.block_on(
                        redis::cmd("SET")
                            .arg("bench:bare")
                            .arg(delta.as_ref())
                            .query_async::<()>(&mut con),
                    )
                    .expect("set")
                })
            });
            g.throughput(criterion::Throughput::Bytes(full.len() as u64));
            g.bench_function("redis_snapshot_put", |b| {
                b.iter(|| {
                    rt.block_on(store.put(ArtifactId::snapshot(1), full.clone()))
                        .expect("put")
                })
            });
            g.bench_function("redis_bulk_set_same_chunks", |b| {
                b.iter(|| {
                    let mut pipe = redis::pipe();
                    for (i, part) in full.chunks(chunk).enumerate() {
                        pipe.cmd("SET")
                            .arg(format!("bench:bulk:{i}"))
                            .arg(part)
                            .ignore();
                    }
                    rt.block_on(pipe.query_async::<()>(&mut con))
                        .expect("pipeline")
                })
            });
            let r = rt
                .block_on(store.put(ArtifactId::snapshot(1), full.clone()))
                .expect("put");
            g.bench_function("redis_snapshot_get", |b| {
                b.iter(|| rt.block_on(store.get(&r)).expect("get"))
            });
            g.throughput(criterion::Throughput::Elements(1));
        }
    }
    // the same data on a Redis Cluster (3 masters, a replica each; every commit waits
    // for its replica): issue 19's single server vs cluster figures
    match std::env::var("BINDSPACE_TEST_REDIS_CLUSTER_URL") {
        Err(_) => {
            eprintln!("warm: BINDSPACE_TEST_REDIS_CLUSTER_URL not set, cluster benches skipped")
        }
        Ok(url) => {
            let store = rt
                .block_on(RedisBackupStore::connect(
                    &url,
                    RedisOptions {
                        prefix: format!("bench-{}:", std::process::id()),
                        ..RedisOptions::default()
                    },
                ))
                .expect("cluster");
            g.throughput(criterion::Throughput::Elements(1));
            g.bench_function("cluster_delta_push_1pct", |b| {
                b.iter(|| {
                    rt.block_on(store.put(ArtifactId::delta(1, 2), delta.clone()))
                        .expect("put")
                })
            });
            g.throughput(criterion::Throughput::Bytes(full.len() as u64));
            g.bench_function("cluster_snapshot_put", |b| {
                b.iter(|| {
                    rt.block_on(store.put(ArtifactId::snapshot(1), full.clone()))
                        .expect("put")
                })
            });
            let r = rt
                .block_on(store.put(ArtifactId::snapshot(1), full.clone()))
                .expect("put");
            g.bench_function("cluster_snapshot_get", |b| {
                b.iter(|| rt.block_on(store.get(&r)).expect("get"))
            });
            g.throughput(criterion::Throughput::Elements(1));
        }
    }
    match std::env::var("BINDSPACE_TEST_PG_URL") {
        Err(_) => eprintln!("warm: BINDSPACE_TEST_PG_URL not set, PostgreSQL benches skipped"),
        Ok(url) => {
            let store = rt
                .block_on(PgBackupStore::connect(
                    &url,
                    PgOptions {
                        schema: format!("bench_{}", std::process::id()),
                        ..PgOptions::default()
                    },
                ))
                .expect("pg");
            let (client, conn) = rt
                .block_on(tokio_postgres::connect(&url, tokio_postgres::NoTls))
                .expect("connect");
            rt.spawn(conn);
            rt.block_on(client.batch_execute(
                "DROP TABLE IF EXISTS bench_copy; CREATE TABLE bench_copy (seq int, data bytea)",
            ))
            .expect("table");
            g.throughput(criterion::Throughput::Bytes(full.len() as u64));
            g.bench_function("pg_snapshot_put", |b| {
                b.iter(|| {
                    rt.block_on(store.put(ArtifactId::snapshot(1), full.clone()))
                        .expect("put")
                })
            });
            g.bench_function("pg_bare_copy_same_chunks", |b| {
                b.iter(|| {
                    rt.block_on(async {
                        use tokio_postgres::binary_copy::BinaryCopyInWriter;
                        use tokio_postgres::types::Type;
                        client.batch_execute("TRUNCATE bench_copy").await?;
                        let sink = client
                            .copy_in("COPY bench_copy (seq, data) FROM STDIN BINARY")
                            .await?;
                        let writer = BinaryCopyInWriter::new(sink, &[Type::INT4, Type::BYTEA]);
                        futures::pin_mut!(writer);
                        for (i, part) in full.chunks(chunk).enumerate() {
                            writer.as_mut().write(&[&(i as i32), &part]).await?;
                        }
                        writer.finish().await
                    })
                    .expect("copy")
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, warm);
criterion_main!(benches);
