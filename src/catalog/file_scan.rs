//! A Delta table version as plain Parquet scans, for engines that cannot run deltalake's own scan.
//!
//! A query planned for a Ballista cluster travels to the scheduler and executors as a serialized
//! logical plan, and deltalake 1.1 has no codec for its scan (delta-rs issue 4171). So the version
//! the step pinned is resolved here, in the Strata process, to the Parquet files of its snapshot,
//! read with the table's Delta schema: a `ListingTable` over exactly those files (never a directory
//! listing, which would also find files of other versions). DataFusion's own codecs serialize that.
//! A partitioned table is the union of one such scan per partition, with the partition values as
//! literal columns; a table without files is an empty table of the same schema.
//!
//! Invariant: a table a plain Parquet scan would misread is refused with a message naming it and
//! the feature (deletion vectors, column mapping, null partition values); it is never read wrong.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::catalog::TableProvider;
use datafusion::catalog::empty::EmptyTable;
use datafusion::catalog::view::ViewTable;
use datafusion::common::{Column, DataFusionError, ScalarValue};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::datasource::provider_as_source;
use datafusion::logical_expr::{Expr, LogicalPlanBuilder, cast, lit};
use deltalake::DeltaTable;

use super::TableName;

/// The Delta table property that turns column mapping on; its files then name columns by id.
const COLUMN_MAPPING_MODE: &str = "delta.columnMapping.mode";

/// A provider that reads exactly the files of `delta`'s loaded version as plain Parquet.
pub fn file_scan(
    table: &TableName,
    delta: &DeltaTable,
) -> datafusion::error::Result<Arc<dyn TableProvider>> {
    let refuse = |why: String| {
        DataFusionError::Plan(format!(
            "{table} (version {}) cannot be read on a cluster: {why}",
            delta.version().unwrap_or(0)
        ))
    };
    let state = delta
        .snapshot()
        .map_err(|e| DataFusionError::External(Box::new(e)))?;
    let snapshot = state.snapshot();
    let metadata = snapshot.metadata();
    if let Some(mode) = metadata.configuration().get(COLUMN_MAPPING_MODE)
        && mode != "none"
    {
        return Err(refuse(format!(
            "it uses column mapping ({COLUMN_MAPPING_MODE} = {mode}); run this step with \
             [engine] kind = \"local\""
        )));
    }
    let schema = snapshot.arrow_schema();
    let partition_columns: Vec<String> = metadata.partition_columns().to_vec();

    // Files grouped by their partition values (one group for an unpartitioned table).
    let mut groups: BTreeMap<Vec<String>, Vec<ListingTableUrl>> = BTreeMap::new();
    for file in state.log_data().iter() {
        if file.deletion_vector_descriptor().is_some() {
            return Err(refuse(format!(
                "file {} has a deletion vector; run this step with [engine] kind = \"local\"",
                file.path()
            )));
        }
        let values = file.partition_values_map();
        let mut key = Vec::with_capacity(partition_columns.len());
        for column in &partition_columns {
            match values.get(column).cloned().flatten() {
                Some(value) => key.push(value),
                None => {
                    return Err(refuse(format!(
                        "a file has a null value for partition column {column}; run this step \
                         with [engine] kind = \"local\""
                    )));
                }
            }
        }
        let uri = delta.log_store().to_uri(&file.object_store_path());
        groups
            .entry(key)
            .or_default()
            .push(ListingTableUrl::parse(&uri)?);
    }

    if groups.is_empty() {
        return Ok(Arc::new(EmptyTable::new(schema)));
    }
    if partition_columns.is_empty() {
        let files = groups.into_values().next().expect("one group");
        return parquet_files(files, schema).map(|t| t as Arc<dyn TableProvider>);
    }

    // The files hold the other columns; each partition's values become literal columns, in the
    // table's column order.
    let file_schema = Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .filter(|f| !partition_columns.contains(f.name()))
            .cloned()
            .collect::<Vec<_>>(),
    ));
    let mut union: Option<LogicalPlanBuilder> = None;
    for (values, files) in groups {
        let scan = parquet_files(files, Arc::clone(&file_schema))?;
        let columns = schema
            .fields()
            .iter()
            .map(|field| column_or_partition_value(field, &partition_columns, &values))
            .collect::<datafusion::error::Result<Vec<Expr>>>()?;
        let part = LogicalPlanBuilder::scan(table.to_string(), provider_as_source(scan), None)?
            .project(columns)?;
        union = Some(match union {
            None => part,
            Some(all) => all.union(part.build()?)?,
        });
    }
    let plan = union.expect("at least one group").build()?;
    Ok(Arc::new(ViewTable::new(plan, None)))
}

/// A Parquet scan of exactly `files`, read with `schema` (columns a file lacks read as nulls).
fn parquet_files(
    files: Vec<ListingTableUrl>,
    schema: SchemaRef,
) -> datafusion::error::Result<Arc<ListingTable>> {
    let options =
        ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
    let config = ListingTableConfig::new_with_multi_paths(files)
        .with_listing_options(options)
        .with_schema(schema);
    Ok(Arc::new(ListingTable::try_new(config)?))
}

/// `field` read from the file, or, for a partition column, its value in this partition cast
/// from the text Delta stores to the column's type.
fn column_or_partition_value(
    field: &Arc<Field>,
    partition_columns: &[String],
    values: &[String],
) -> datafusion::error::Result<Expr> {
    let name = field.name();
    Ok(match partition_columns.iter().position(|c| c == name) {
        None => Expr::Column(Column::new_unqualified(name)),
        Some(i) => cast(
            lit(ScalarValue::Utf8(Some(values[i].clone()))),
            field.data_type().clone(),
        )
        .alias(name),
    })
}

#[cfg(test)]
mod tests {
    use arrow::array::{Int64Array, RecordBatch, StringArray};
    use arrow::datatypes::DataType;
    use arrow::util::pretty::pretty_format_batches;
    use datafusion::prelude::SessionContext;
    use deltalake::protocol::SaveMode;
    use url::Url;

    use super::*;
    use crate::catalog::Layer;

    fn events(ids: &[i64], kinds: &[&str], years: &[i64]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("kind", DataType::Utf8, false),
            Field::new("year", DataType::Int64, false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(ids.to_vec())),
                Arc::new(StringArray::from(kinds.to_vec())),
                Arc::new(Int64Array::from(years.to_vec())),
            ],
        )
        .unwrap()
    }

    /// The provider's rows, sorted, as a table of text with column names.
    async fn rows(provider: Arc<dyn TableProvider>) -> String {
        let frame = SessionContext::new().read_table(provider).unwrap();
        let frame = frame
            .select_columns(&["id", "kind", "year"])
            .unwrap()
            .sort_by(vec![datafusion::prelude::col("id")])
            .unwrap();
        pretty_format_batches(&frame.collect().await.unwrap())
            .unwrap()
            .to_string()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_partitioned_version_reads_exactly_its_files_with_typed_partition_values() {
        let dir = tempfile::tempdir().unwrap();
        let url = Url::from_directory_path(dir.path()).unwrap();
        let table = deltalake::DeltaTableBuilder::from_url(url.clone())
            .unwrap()
            .build()
            .unwrap()
            .write(vec![events(
                &[1, 2, 3],
                &["a", "b", "a"],
                &[2024, 2025, 2025],
            )])
            .with_partition_columns(["kind", "year"])
            .await
            .unwrap();
        table
            .write(vec![events(&[4], &["c"], &[2026])])
            .with_save_mode(SaveMode::Append)
            .await
            .unwrap();
        let name = TableName::new(Layer::Silver, "events");

        for version in [0, 1] {
            let delta = deltalake::open_table_with_version(url.clone(), version)
                .await
                .unwrap();
            let plain = file_scan(&name, &delta).unwrap();
            assert_eq!(
                plain.schema().field_with_name("year").unwrap().data_type(),
                &DataType::Int64,
                "partition values keep their column's type"
            );
            let expected = rows(delta.table_provider().await.unwrap()).await;
            assert_eq!(rows(plain).await, expected, "version {version}");
        }
        let v0 = deltalake::open_table_with_version(url, 0).await.unwrap();
        let text = rows(file_scan(&name, &v0).unwrap()).await;
        assert!(
            !text.contains("| 4 "),
            "version 0 must not see the file of version 1:\n{text}"
        );
    }
}
