//! The store's own SQL schema, as numbered migrations. A migration is never edited once
//! released; a change adds the next one. `{s}` stands for the quoted schema name.

/// One schema migration.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Its number; applied in order.
    pub version: i32,
    /// What it does.
    pub name: &'static str,
    /// The SQL, with `{s}` for the schema.
    pub sql: &'static str,
}

/// Every migration, in order.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "artifacts",
        sql: r#"
CREATE TABLE {s}.artifacts (
    kind          text     NOT NULL CHECK (kind IN ('snapshot', 'delta', 'wal')),
    first_version bigint   NOT NULL,
    last_version  bigint   NOT NULL,
    len           bigint   NOT NULL CHECK (len >= 0),
    blake3        bytea    NOT NULL CHECK (length(blake3) = 32),
    chunk_size    integer  NOT NULL CHECK (chunk_size > 0),
    chunks        integer  NOT NULL CHECK (chunks >= 0),
    stored_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, first_version, last_version)
);
CREATE TABLE {s}.artifact_chunks (
    kind          text    NOT NULL,
    first_version bigint  NOT NULL,
    last_version  bigint  NOT NULL,
    seq           integer NOT NULL,
    data          bytea   NOT NULL,
    PRIMARY KEY (kind, first_version, last_version, seq),
    FOREIGN KEY (kind, first_version, last_version)
        REFERENCES {s}.artifacts ON DELETE CASCADE
);
"#,
    },
    Migration {
        version: 2,
        name: "catalog, restore points, schema versions, lease",
        sql: r#"
CREATE TABLE {s}.catalog (
    id           smallint PRIMARY KEY CHECK (id = 1),
    generation   bigint   NOT NULL,
    manifest     bytea    NOT NULL,
    committed_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE {s}.backups (
    id           text PRIMARY KEY,
    kind         text   NOT NULL,
    parent       text,
    from_version bigint NOT NULL,
    to_version   bigint NOT NULL,
    start_us     bigint NOT NULL,
    end_us       bigint NOT NULL,
    size         bigint NOT NULL,
    blake3       text   NOT NULL,
    status       text   NOT NULL,
    locations    text[] NOT NULL,
    entry        jsonb  NOT NULL
);
CREATE INDEX backups_to_version ON {s}.backups (to_version);
CREATE TABLE {s}.restore_points (
    name       text PRIMARY KEY,
    version    bigint  NOT NULL,
    created_us bigint  NOT NULL,
    guaranteed boolean NOT NULL
);
CREATE TABLE {s}.schema_versions (
    major             integer NOT NULL,
    minor             integer NOT NULL,
    patch             integer NOT NULL,
    fingerprint_words integer NOT NULL,
    address_space     bigint  NOT NULL,
    features          bigint  NOT NULL,
    first_seen        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (major, minor, patch, fingerprint_words, address_space, features)
);
CREATE TABLE {s}.lease (
    id         smallint PRIMARY KEY CHECK (id = 1),
    holder     text   NOT NULL,
    since_us   bigint NOT NULL,
    expires_us bigint NOT NULL,
    token      bigint NOT NULL
);
CREATE SEQUENCE {s}.lease_fence;
"#,
    },
    Migration {
        version: 3,
        name: "timelines: every artifact belongs to one (layout 1's are timeline 1)",
        sql: r#"
ALTER TABLE {s}.artifact_chunks
    DROP CONSTRAINT artifact_chunks_kind_first_version_last_version_fkey;
ALTER TABLE {s}.artifacts
    ADD COLUMN timeline integer NOT NULL DEFAULT 1 CHECK (timeline >= 1);
ALTER TABLE {s}.artifact_chunks
    ADD COLUMN timeline integer NOT NULL DEFAULT 1;
ALTER TABLE {s}.artifacts
    DROP CONSTRAINT artifacts_pkey,
    ADD PRIMARY KEY (timeline, kind, first_version, last_version);
ALTER TABLE {s}.artifact_chunks
    DROP CONSTRAINT artifact_chunks_pkey,
    ADD PRIMARY KEY (timeline, kind, first_version, last_version, seq),
    ADD FOREIGN KEY (timeline, kind, first_version, last_version)
        REFERENCES {s}.artifacts ON DELETE CASCADE;
"#,
    },
];
