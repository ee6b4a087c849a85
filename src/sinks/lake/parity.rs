//! Parity with the source: every row of a MySQL table, read chunk by chunk in key order inside one
//! consistent snapshot, compared with the Delta table once the lake has reached that snapshot's binlog
//! position. Rows are compared as Arrow rows of the lake's types (the conversion the MERGE uses), so a
//! difference is a real one, not a formatting artefact. Keys that differ are read again from a fresh
//! snapshot (a busy table moves on while it is compared); those that still differ after `rounds` are
//! reported. Memory: one chunk on each side, the differing keys (at most `MAX_RECHECK`), and — only when
//! the lake holds rows no source key matched — an 8-byte hash per source key to name them.

use super::arrow::{build_column, lake_type};
use super::validate::{ident, TableResult};
use super::LakeError;
use crate::config::Config;
use crate::event::{TableId, TableSchema, Value};
use crate::sinks::Sink;
use crate::sources::mysql::parity::SnapshotReader;
use crate::transforms::quality::MAX_SAMPLE_KEYS;
use deltalake::arrow::array::{Array, ArrayRef, Int64Array, RecordBatch};
use deltalake::arrow::compute::{cast, max, min};
use deltalake::arrow::datatypes::{DataType, Field, Schema};
use deltalake::arrow::row::{RowConverter, Rows, SortField};
use deltalake::arrow::util::display::array_value_to_string;
use deltalake::datafusion::common::JoinType;
use deltalake::datafusion::prelude::{lit, DataFrame, SessionContext};
use futures_util::StreamExt;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Differing keys kept for the next round; beyond it they are counted only.
const MAX_RECHECK: usize = 10_000;
/// Keys per `IN (…)` when differing keys are read again.
const RECHECK_BATCH: usize = 1_000;

pub struct ParityOptions {
    pub chunk_rows: usize,
    pub rounds: u32,
    pub catch_up: Duration,
}

/// What one comparison found.
#[derive(Default)]
struct Diff {
    /// Keys whose rows differ or are missing from the lake (MySQL values, for the next round).
    keys: Vec<Vec<Value>>,
    missing: u64,
    different: u64,
    /// Lake rows for a key seen twice.
    duplicated: u64,
    /// Lake rows matched to a source key.
    matched: u64,
    samples: Vec<String>,
}

/// The lake's view of one table: its source columns, soft-deleted rows left out.
struct LakeSide {
    df: DataFrame,
    columns: Vec<String>,
    types: Vec<DataType>,
    key: Vec<usize>,
}

impl LakeSide {
    async fn open(
        config: &Config,
        id: &TableId,
        schema: &TableSchema,
    ) -> Result<Result<Self, String>, LakeError> {
        let ctx = super::query::session(&config.lake).await?;
        let table = format!("{}.{}", ident(&id.database), ident(&id.table));
        let deleted = format!("{}deleted", config.lake.metadata_prefix);
        let df = ctx.sql(&format!("SELECT * FROM {table}")).await?;
        let present: HashSet<String> = df
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let columns: Vec<String> = schema.columns.iter().map(|c| c.name.clone()).collect();
        if let Some(c) = columns.iter().find(|c| !present.contains(*c)) {
            return Ok(Err(format!("source column `{c}` is not in the lake table")));
        }
        let filter = if config.lake.soft_delete {
            format!(" WHERE NOT {}", ident(&deleted))
        } else {
            String::new()
        };
        let select: Vec<String> = columns.iter().map(|c| ident(c)).collect();
        let df = ctx
            .sql(&format!(
                "SELECT {} FROM {table}{filter}",
                select.join(", ")
            ))
            .await?;
        Ok(Ok(LakeSide {
            df,
            types: schema.columns.iter().map(lake_type).collect(),
            columns,
            key: schema.key.clone(),
        }))
    }

    async fn count(&self) -> Result<u64, LakeError> {
        Ok(self.df.clone().count().await? as u64)
    }

    /// The lake's rows for the keys of `source` (a batch of source rows), cast to the source's types.
    async fn rows_for(&self, source: &RecordBatch) -> Result<Vec<RecordBatch>, LakeError> {
        let keys = source.project(&self.key)?;
        let renamed: Vec<Field> = (0..keys.num_columns())
            .map(|i| {
                Field::new(
                    format!("__parity_k{i}"),
                    keys.column(i).data_type().clone(),
                    true,
                )
            })
            .collect();
        let keys = RecordBatch::try_new(Arc::new(Schema::new(renamed)), keys.columns().to_vec())?;
        let mut df = self.df.clone();
        // integer keys: let file statistics skip what is outside the chunk's range
        let first = keys.column(0);
        // (BIGINT UNSIGNED is a DECIMAL(20,0) in the lake; a value past i64 casts to NULL: no pruning)
        if first.data_type().is_integer() || matches!(first.data_type(), DataType::Decimal128(_, 0))
        {
            let ints = cast(first, &DataType::Int64)?;
            let ints = ints.as_any().downcast_ref::<Int64Array>().expect("cast");
            if let (Some(lo), Some(hi), 0) = (min(ints), max(ints), ints.null_count()) {
                let k = deltalake::datafusion::prelude::ident(&self.columns[self.key[0]]);
                df = df.filter(k.between(lit(lo), lit(hi)))?;
            }
        }
        let ctx = SessionContext::new();
        let key_df = ctx.read_batch(keys)?;
        let left: Vec<&str> = self.key.iter().map(|&k| self.columns[k].as_str()).collect();
        let right: Vec<String> = (0..self.key.len())
            .map(|i| format!("__parity_k{i}"))
            .collect();
        let right: Vec<&str> = right.iter().map(|s| s.as_str()).collect();
        let joined = df.join(key_df, JoinType::LeftSemi, &left, &right, None)?;
        joined
            .collect()
            .await?
            .into_iter()
            .map(|b| self.conform(&b))
            .collect()
    }

    /// Casts a lake batch to the source's column types (the lake may read strings as views).
    fn conform(&self, b: &RecordBatch) -> Result<RecordBatch, LakeError> {
        let cols: Vec<ArrayRef> = (0..self.types.len())
            .map(|i| cast(b.column(i), &self.types[i]))
            .collect::<Result<_, _>>()?;
        Ok(RecordBatch::try_new(self.schema(), cols)?)
    }

    fn schema(&self) -> Arc<Schema> {
        Arc::new(Schema::new(
            self.columns
                .iter()
                .zip(&self.types)
                .map(|(c, t)| Field::new(c, t.clone(), true))
                .collect::<Vec<_>>(),
        ))
    }

    /// Source rows as a batch of the lake's types.
    fn batch(&self, rows: &[Vec<Value>]) -> Result<RecordBatch, LakeError> {
        let cols: Vec<ArrayRef> = (0..self.columns.len())
            .map(|c| {
                let values: Vec<Option<&Value>> = rows.iter().map(|r| r.get(c)).collect();
                build_column(&self.columns[c], &self.types[c], &values)
            })
            .collect::<Result<_, _>>()?;
        Ok(RecordBatch::try_new(self.schema(), cols)?)
    }

    /// Row and key encodings that compare equal exactly when the values are equal.
    fn converters(&self) -> Result<(RowConverter, RowConverter), LakeError> {
        let all = RowConverter::new(
            self.types
                .iter()
                .map(|t| SortField::new(t.clone()))
                .collect(),
        )?;
        let key = RowConverter::new(
            self.key
                .iter()
                .map(|&k| SortField::new(self.types[k].clone()))
                .collect(),
        )?;
        Ok((all, key))
    }

    /// The key columns of a batch of all columns, encoded so equal keys have equal bytes.
    fn key_rows(&self, b: &RecordBatch) -> Result<Rows, LakeError> {
        let cols: Vec<ArrayRef> = self.key.iter().map(|&k| b.column(k).clone()).collect();
        Ok(self.converters()?.1.convert_columns(&cols)?)
    }

    fn key_text(&self, b: &RecordBatch, row: usize) -> String {
        self.key
            .iter()
            .map(|&k| {
                let v = array_value_to_string(b.column(k), row).unwrap_or_default();
                format!("{}={v}", self.columns[k])
            })
            .collect::<Vec<_>>()
            .join(",")
    }
}

fn hash64(bytes: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

/// Compares source rows with the lake's rows for the same keys.
async fn compare(lake: &LakeSide, rows: Vec<Vec<Value>>, diff: &mut Diff) -> Result<(), LakeError> {
    if rows.is_empty() {
        return Ok(());
    }
    let source = lake.batch(&rows)?;
    let (all, _) = lake.converters()?;
    let source_keys = lake.key_rows(&source)?;
    let source_rows = all.convert_columns(source.columns())?;
    let mut wanted: HashMap<Vec<u8>, usize> = (0..source.num_rows())
        .map(|i| (source_keys.row(i).as_ref().to_vec(), i))
        .collect();
    let mut seen: HashSet<Vec<u8>> = HashSet::new();
    for b in lake.rows_for(&source).await? {
        let lake_keys = lake.key_rows(&b)?;
        let lake_rows = all.convert_columns(b.columns())?;
        for r in 0..b.num_rows() {
            let k = lake_keys.row(r).as_ref().to_vec();
            if let Some(i) = wanted.remove(&k) {
                diff.matched += 1;
                if source_rows.row(i).as_ref() != lake_rows.row(r).as_ref() {
                    diff.different += 1;
                    note(diff, lake, &source, i, &rows, "differs");
                }
                seen.insert(k);
            } else if seen.contains(&k) {
                diff.duplicated += 1;
                diff.matched += 1;
                if diff.samples.len() < MAX_SAMPLE_KEYS {
                    diff.samples
                        .push(format!("duplicated in the lake: {}", lake.key_text(&b, r)));
                }
            }
        }
    }
    let mut missing: Vec<usize> = wanted.into_values().collect();
    missing.sort_unstable();
    for i in missing {
        diff.missing += 1;
        note(diff, lake, &source, i, &rows, "missing in the lake");
    }
    Ok(())
}

fn note(
    diff: &mut Diff,
    lake: &LakeSide,
    source: &RecordBatch,
    i: usize,
    rows: &[Vec<Value>],
    what: &str,
) {
    if diff.samples.len() < MAX_SAMPLE_KEYS {
        diff.samples
            .push(format!("{what}: {}", lake.key_text(source, i)));
    }
    if diff.keys.len() < MAX_RECHECK {
        diff.keys
            .push(lake.key.iter().map(|&k| rows[i][k].clone()).collect());
    }
}

/// Waits until the lake's recorded progress reaches `target`. Only direct mode records a binlog position
/// in the lake; Kafka mode (offsets instead) and a lake without progress are compared as they stand.
/// False: still behind at the deadline.
async fn catch_up(
    config: &Config,
    target: &crate::event::BinlogPosition,
    within: Duration,
) -> Result<bool, LakeError> {
    let deadline = Instant::now() + within;
    let mut sink = super::batch::LakeSink::new(config).await?;
    loop {
        let at = sink
            .resume_point()
            .await
            .map_err(|e| LakeError::Definite(e.to_string()))?;
        let Some(cp) = at else { return Ok(true) };
        if cp.snapshot.is_none_or(|s| s.complete) && &cp.position >= target {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn open_snapshot(config: &Config, id: &TableId) -> Result<Option<SnapshotReader>, LakeError> {
    SnapshotReader::open(&config.source, &config.filter(), id)
        .await
        .map_err(|e| LakeError::Definite(format!("parity: reading {id} from the source: {e}")))
}

/// The source table in key order, `chunk_rows` at a time, within the reader's snapshot.
struct ChunkWalk {
    chunk_rows: usize,
    after: Option<Vec<Value>>,
    done: bool,
}

impl ChunkWalk {
    fn new(chunk_rows: usize) -> Self {
        ChunkWalk {
            chunk_rows,
            after: None,
            done: false,
        }
    }

    async fn next(
        &mut self,
        reader: &mut SnapshotReader,
    ) -> Result<Option<Vec<Vec<Value>>>, LakeError> {
        if self.done {
            return Ok(None);
        }
        let rows = reader
            .chunk(self.after.as_deref(), self.chunk_rows)
            .await
            .map_err(source_error)?;
        self.done = rows.len() < self.chunk_rows;
        let Some(last) = rows.last() else {
            return Ok(None);
        };
        self.after = Some(reader.table.projected.key_of(last));
        Ok(Some(rows))
    }
}

fn source_error(e: crate::sources::mysql::SourceError) -> LakeError {
    LakeError::Definite(format!("parity: reading the source: {e}"))
}

/// Compares `id` in MySQL and in the lake; fills `r` and says whether they are equal.
pub(super) async fn parity(
    config: &Config,
    id: &TableId,
    opts: &ParityOptions,
    r: &mut TableResult,
) -> Result<bool, LakeError> {
    let Some(mut reader) = open_snapshot(config, id).await? else {
        r.observed = "the table is not in the source (or not captured)".into();
        return Ok(false);
    };
    let caught_up = catch_up(config, &reader.position, opts.catch_up).await?;
    let schema = reader.table.projected.clone();
    let lake = match LakeSide::open(config, id, &schema).await? {
        Ok(l) => l,
        Err(why) => {
            r.observed = why;
            return Ok(false);
        }
    };
    let source_count = reader.count().await.map_err(source_error)?;
    let lake_count = lake.count().await?;
    r.element_count = source_count;
    let mut diff = Diff::default();
    let mut walk = ChunkWalk::new(opts.chunk_rows);
    while let Some(rows) = walk.next(&mut reader).await? {
        compare(&lake, rows, &mut diff).await?;
    }
    // the lake holds rows no source key matched: find them by a second pass over the source's keys
    // (in the same snapshot), 8 bytes per key — only when there are such rows
    let mut extra_samples = vec![];
    let extra = if lake_count > diff.matched {
        let mut keys = HashSet::new();
        let mut walk = ChunkWalk::new(opts.chunk_rows);
        while let Some(rows) = walk.next(&mut reader).await? {
            let encoded = lake.key_rows(&lake.batch(&rows)?)?;
            keys.extend((0..rows.len()).map(|i| hash64(encoded.row(i).as_ref())));
        }
        extra_rows(&lake, &keys, &mut extra_samples).await?
    } else {
        0
    };
    let position = reader.position.clone();
    reader.close().await.map_err(source_error)?;
    // a busy table moves on while it is compared: read what differed again, from a fresh snapshot
    let (mut missing, mut different) = (diff.missing, diff.different);
    let mut keys = std::mem::take(&mut diff.keys);
    for _ in 1..opts.rounds {
        if keys.is_empty() {
            break;
        }
        let Some(mut reader) = open_snapshot(config, id).await? else {
            break;
        };
        catch_up(config, &reader.position, opts.catch_up).await?;
        let lake = match LakeSide::open(config, id, &schema).await? {
            Ok(l) => l,
            Err(_) => break,
        };
        let mut again = Diff::default();
        for part in keys.chunks(RECHECK_BATCH) {
            let rows = reader.rows_with_keys(part).await.map_err(source_error)?;
            // keys the source no longer has must be gone from the lake too
            let found: HashSet<Vec<u8>> = {
                let encoded = lake.key_rows(&lake.batch(&rows)?)?;
                (0..rows.len())
                    .map(|i| encoded.row(i).as_ref().to_vec())
                    .collect()
            };
            let gone = gone_keys(&lake, part, &found)?;
            compare(&lake, rows, &mut again).await?;
            if !gone.is_empty() {
                let lake_rows: usize = lake
                    .rows_for(&lake.key_batch(&gone)?)
                    .await?
                    .iter()
                    .map(|b| b.num_rows())
                    .sum();
                if lake_rows > 0 {
                    again.different += lake_rows as u64;
                    again.keys.extend(gone);
                }
            }
        }
        reader.close().await.map_err(source_error)?;
        missing = again.missing;
        different = again.different;
        diff.samples = again.samples;
        keys = again.keys;
    }
    let differing = missing + different + diff.duplicated + extra;
    r.unexpected_count = differing;
    r.sample_keys = diff
        .samples
        .into_iter()
        .chain(extra_samples)
        .take(MAX_SAMPLE_KEYS)
        .collect();
    r.observed = format!(
        "{source_count} rows in the source at {position}, {lake_count} in the lake{}: \
         {missing} missing in the lake, {different} different, {extra} only in the lake, {} duplicated",
        if caught_up {
            ""
        } else {
            " (which had not reached that position yet)"
        },
        diff.duplicated
    );
    Ok(differing == 0)
}

/// Keys of `part` the source did not return.
fn gone_keys(
    lake: &LakeSide,
    part: &[Vec<Value>],
    found: &HashSet<Vec<u8>>,
) -> Result<Vec<Vec<Value>>, LakeError> {
    let converted = lake.key_rows(&lake.key_batch(part)?)?;
    Ok((0..part.len())
        .filter(|&i| !found.contains(converted.row(i).as_ref()))
        .map(|i| part[i].clone())
        .collect())
}

impl LakeSide {
    /// A batch holding only key values (other columns NULL), as `rows_for` takes it.
    fn key_batch(&self, keys: &[Vec<Value>]) -> Result<RecordBatch, LakeError> {
        let width = self.columns.len();
        let rows: Vec<Vec<Value>> = keys
            .iter()
            .map(|k| {
                let mut row = vec![Value::Null; width];
                for (v, &i) in k.iter().zip(&self.key) {
                    row[i] = v.clone();
                }
                row
            })
            .collect();
        self.batch(&rows)
    }
}

/// Lake rows whose key the source does not have (counted; samples added).
async fn extra_rows(
    lake: &LakeSide,
    source_keys: &HashSet<u64>,
    samples: &mut Vec<String>,
) -> Result<u64, LakeError> {
    let (_, key) = lake.converters()?;
    let key_names: Vec<&str> = lake.key.iter().map(|&k| lake.columns[k].as_str()).collect();
    let mut stream = lake
        .df
        .clone()
        .select_columns(&key_names)?
        .execute_stream()
        .await?;
    let mut extra = 0;
    while let Some(b) = stream.next().await {
        let b = b?;
        let cols: Vec<ArrayRef> = (0..b.num_columns())
            .map(|i| cast(b.column(i), &lake.types[lake.key[i]]))
            .collect::<Result<_, _>>()?;
        let converted = key.convert_columns(&cols)?;
        for i in 0..b.num_rows() {
            if !source_keys.contains(&hash64(converted.row(i).as_ref())) {
                extra += 1;
                if samples.len() < MAX_SAMPLE_KEYS {
                    let text = key_names
                        .iter()
                        .zip(&cols)
                        .map(|(n, c)| {
                            format!("{n}={}", array_value_to_string(c, i).unwrap_or_default())
                        })
                        .collect::<Vec<_>>()
                        .join(",");
                    samples.push(format!("only in the lake: {text}"));
                }
            }
        }
    }
    Ok(extra)
}
