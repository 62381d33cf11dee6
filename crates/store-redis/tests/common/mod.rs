//! What the single-server and cluster tests of the Redis store share: small chunks,
//! and damage done behind the store's back.
#![allow(dead_code, clippy::unwrap_used)] // each test binary uses a part; a panic is the report

use bindspace_store_redis::RedisOptions;

/// 1 MiB chunks in 4 MiB pipelines below `prefix`: a few MiB make several round trips.
pub fn small_chunks(prefix: String) -> RedisOptions {
    RedisOptions {
        prefix,
        chunk_size: 1 << 20,
        pipeline_bytes: 4 << 20,
        ..RedisOptions::default()
    }
}

/// Flips the first byte of the first chunk of the artifact whose metadata hash is
/// `meta_key`, keeping its length.
pub async fn flip_first_chunk(c: &mut impl redis::aio::ConnectionLike, meta_key: String) {
    let prefix: String = redis::cmd("HGET")
        .arg(meta_key)
        .arg("chunk_prefix")
        .query_async(c)
        .await
        .unwrap();
    let key = format!("{prefix}0");
    let mut v: Vec<u8> = redis::cmd("GET").arg(&key).query_async(c).await.unwrap();
    v[0] ^= 0xff;
    redis::cmd("SET")
        .arg(&key)
        .arg(v)
        .query_async::<()>(c)
        .await
        .unwrap();
}
