//! AWS Glue registration: one Glue database per MySQL database (with an optional prefix) and one external
//! `table_type=DELTA` table per Delta table, columns kept in sync as the schema evolves. Idempotent.

use super::LakeError;
use crate::config::GlueConfig;
use aws_sdk_glue::types::{Column, DatabaseInput, SerDeInfo, StorageDescriptor, TableInput};
use deltalake::arrow::datatypes::{DataType, TimeUnit};

pub struct GlueCatalog {
    client: aws_sdk_glue::Client,
    prefix: String,
}

/// Hive/Athena type of a lake column.
pub fn hive_type(t: &DataType) -> String {
    match t {
        DataType::Boolean => "boolean".into(),
        DataType::Int8 => "tinyint".into(),
        DataType::Int16 => "smallint".into(),
        DataType::Int32 => "int".into(),
        DataType::Int64 => "bigint".into(),
        DataType::Float32 => "float".into(),
        DataType::Float64 => "double".into(),
        DataType::Decimal128(p, s) => format!("decimal({p},{s})"),
        DataType::Date32 => "date".into(),
        DataType::Timestamp(TimeUnit::Microsecond, _) => "timestamp".into(),
        DataType::Binary | DataType::BinaryView | DataType::LargeBinary => "binary".into(),
        DataType::List(f) => format!("array<{}>", hive_type(f.data_type())),
        _ => "string".into(),
    }
}

/// Counts a Glue call by operation and outcome (an expected "already exists" counts as an error here).
fn counted<T, E>(op: &str, result: Result<T, E>) -> Result<T, E> {
    let outcome = if result.is_ok() { "ok" } else { "error" };
    crate::observe::METRICS
        .glue_calls
        .with_label_values(&[op, outcome])
        .inc();
    result
}

/// A request that could not be built: a definite error.
fn glue_err(what: &str, e: impl std::fmt::Display) -> LakeError {
    LakeError::Catalog {
        detail: format!("Glue {what}: {e}"),
        transient: false,
    }
}

/// A failed Glue call: timeouts, network failures, throttling and server errors are transient.
fn glue_call_err<E, R>(what: &str, e: aws_sdk_glue::error::SdkError<E, R>) -> LakeError
where
    E: std::error::Error + aws_sdk_glue::error::ProvideErrorMetadata + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    use aws_sdk_glue::error::SdkError;
    let transient = match &e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(s) => matches!(
            s.err().code(),
            Some("ThrottlingException" | "InternalServiceException" | "OperationTimeoutException")
        ),
        _ => false,
    };
    crate::observe::error("glue", if transient { "transient" } else { "definite" });
    LakeError::Catalog {
        detail: format!(
            "Glue {what}: {}",
            aws_sdk_glue::error::DisplayErrorContext(e)
        ),
        transient,
    }
}

impl GlueCatalog {
    pub async fn new(cfg: &GlueConfig) -> Self {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(region) = &cfg.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        if let Some(endpoint) = &cfg.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        let conf = loader.load().await;
        GlueCatalog {
            client: aws_sdk_glue::Client::new(&conf),
            prefix: cfg.database_prefix.clone(),
        }
    }

    /// `<database_prefix><db>`, the MySQL name in the lake's safe encoding (`crate::names`).
    pub fn database_name(&self, mysql_db: &str) -> Result<String, LakeError> {
        Ok(format!(
            "{}{}",
            self.prefix,
            crate::names::encode(mysql_db)?
        ))
    }

    /// Creates the database if needed and creates or updates the table to match `columns`.
    pub async fn register(
        &self,
        mysql_db: &str,
        table: &str,
        location: &str,
        columns: &[(String, DataType)],
    ) -> Result<(), LakeError> {
        let database = self.database_name(mysql_db)?;
        let db_input = DatabaseInput::builder()
            .name(&database)
            .description(format!("binlake capture of MySQL database {mysql_db}"))
            .build()
            .map_err(|e| glue_err("database input", e))?;
        match counted(
            "create_database",
            self.client
                .create_database()
                .database_input(db_input)
                .send()
                .await,
        ) {
            Ok(_) => tracing::info!(database, "created Glue database"),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_already_exists_exception()) => {}
            Err(e) => return Err(glue_call_err("create_database", e)),
        }
        let cols: Vec<Column> = columns
            .iter()
            .map(|(n, t)| {
                Column::builder()
                    .name(n.to_ascii_lowercase())
                    .r#type(hive_type(t))
                    .build()
            })
            .collect::<Result<_, _>>()
            .map_err(|e| glue_err("column", e))?;
        let sd = StorageDescriptor::builder()
            .location(location)
            .set_columns(Some(cols))
            .input_format("org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat")
            .output_format("org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat")
            .serde_info(
                SerDeInfo::builder()
                    .serialization_library(
                        "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe",
                    )
                    .build(),
            )
            .build();
        let name = crate::names::encode(table)?;
        let input = TableInput::builder()
            .name(&name)
            .table_type("EXTERNAL_TABLE")
            .parameters("table_type", "DELTA")
            .parameters("EXTERNAL", "TRUE")
            .parameters("spark.sql.sources.provider", "delta")
            .parameters("binlake.source", format!("{mysql_db}.{table}"))
            .storage_descriptor(sd)
            .build()
            .map_err(|e| glue_err("table input", e))?;
        let existing = counted(
            "get_table",
            self.client
                .get_table()
                .database_name(&database)
                .name(&name)
                .send()
                .await,
        );
        match existing {
            Ok(_) => {
                counted(
                    "update_table",
                    self.client
                        .update_table()
                        .database_name(&database)
                        .table_input(input)
                        .send()
                        .await,
                )
                .map_err(|e| glue_call_err("update_table", e))?;
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_entity_not_found_exception()) =>
            {
                counted(
                    "create_table",
                    self.client
                        .create_table()
                        .database_name(&database)
                        .table_input(input)
                        .send()
                        .await,
                )
                .map_err(|e| glue_call_err("create_table", e))?;
                tracing::info!(database, table = name, location, "registered Glue table");
            }
            Err(e) => return Err(glue_call_err("get_table", e)),
        }
        Ok(())
    }

    /// Removes the table of a MySQL table that was dropped (or renamed away); gone already is fine.
    pub async fn deregister(&self, mysql_db: &str, table: &str) -> Result<(), LakeError> {
        let database = self.database_name(mysql_db)?;
        let name = crate::names::encode(table)?;
        match counted(
            "delete_table",
            self.client
                .delete_table()
                .database_name(&database)
                .name(&name)
                .send()
                .await,
        ) {
            Ok(_) => {
                tracing::info!(
                    database,
                    table = name,
                    "removed the Glue table of a dropped table"
                );
                Ok(())
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_entity_not_found_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(glue_call_err("delete_table", e)),
        }
    }
}
