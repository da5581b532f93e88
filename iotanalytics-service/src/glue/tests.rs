//! Unit tests of the Glue tables over the real SDK client, answered by aws-smithy-mocks.

use super::*;
use aws_sdk_glue::operation::create_table::{
    CreateTableError, CreateTableInput, CreateTableOutput,
};
use aws_sdk_glue::operation::delete_table::{DeleteTableError, DeleteTableOutput};
use aws_sdk_glue::operation::get_table::{GetTableError, GetTableOutput};
use aws_sdk_glue::operation::update_table::{
    UpdateTableError, UpdateTableInput, UpdateTableOutput,
};
use aws_sdk_glue::types::error::{
    AlreadyExistsException, ConcurrentModificationException, EntityNotFoundException,
    InternalServiceException,
};
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use std::sync::{Arc, Mutex};

/// A mocked client without SDK retries, so each rule answers exactly one call.
fn tables(rules: &[&Rule]) -> GlueTables {
    let client = mock_client!(aws_sdk_glue, RuleMode::MatchAny, rules, |c| c
        .retry_config(aws_smithy_types::retry::RetryConfig::disabled()));
    GlueTables::new(client, "iotanalytics_db", "data-bucket", "svc/")
}

/// Errors parsed off the wire carry their code; mocked ones need it set.
fn meta(code: &str) -> aws_smithy_types::error::ErrorMetadata {
    aws_smithy_types::error::ErrorMetadata::builder()
        .code(code)
        .message("from the mock")
        .build()
}

fn not_found() -> GetTableError {
    GetTableError::EntityNotFoundException(
        EntityNotFoundException::builder()
            .message("Table sensors not found.")
            .meta(meta("EntityNotFoundException"))
            .build(),
    )
}

fn cols(list: &[(&str, AttrType)]) -> Vec<(String, AttrType)> {
    list.iter().map(|(n, k)| ((*n).to_owned(), *k)).collect()
}

/// The table Glue would return after the service created or updated it with `columns`.
fn stored(columns: &[(&str, AttrType)], version: &str) -> Table {
    let tables = tables(&[]);
    let input = tables.table_input("Sensors", &cols(columns)).unwrap();
    Table::builder()
        .name(input.name())
        .database_name("iotanalytics_db")
        .set_table_type(input.table_type.clone())
        .set_parameters(input.parameters.clone())
        .set_partition_keys(input.partition_keys.clone())
        .set_storage_descriptor(input.storage_descriptor.clone())
        .version_id(version)
        .build()
        .unwrap()
}

fn get_returning(table: Table) -> Rule {
    mock!(aws_sdk_glue::Client::get_table)
        .match_requests(|req| {
            req.database_name() == Some("iotanalytics_db") && req.name() == Some("sensors")
        })
        .then_output(move || GetTableOutput::builder().table(table.clone()).build())
}

/// An UpdateTable rule that records what was sent.
fn recording_update(sent: Arc<Mutex<Vec<UpdateTableInput>>>) -> Rule {
    mock!(aws_sdk_glue::Client::update_table)
        .match_requests(move |req| {
            sent.lock().unwrap().push(req.clone());
            true
        })
        .then_output(|| UpdateTableOutput::builder().build())
}

fn untouched_create() -> Rule {
    mock!(aws_sdk_glue::Client::create_table).then_output(|| CreateTableOutput::builder().build())
}

fn untouched_update() -> Rule {
    mock!(aws_sdk_glue::Client::update_table).then_output(|| UpdateTableOutput::builder().build())
}

/// (name, Glue type, recorded kind) of each column sent.
fn sent_columns(input: &TableInput) -> Vec<(String, String, String)> {
    input
        .storage_descriptor()
        .unwrap()
        .columns()
        .iter()
        .map(|c| {
            (
                c.name().to_owned(),
                c.r#type().unwrap_or_default().to_owned(),
                c.parameters()
                    .and_then(|p| p.get(TYPE_PARAMETER))
                    .cloned()
                    .unwrap_or_default(),
            )
        })
        .collect()
}

fn triples(list: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
    list.iter()
        .map(|(a, b, c)| ((*a).to_owned(), (*b).to_owned(), (*c).to_owned()))
        .collect()
}

#[test]
fn the_location_follows_the_data_layout_whatever_the_prefix_looks_like() {
    let client = mock_client!(aws_sdk_glue, &[]);
    for (prefix, expected) in [
        ("", "s3://b/datastores/Sensors/"),
        ("svc/", "s3://b/svc/datastores/Sensors/"),
        ("svc", "s3://b/svc/datastores/Sensors/"),
        ("/a/b/", "s3://b/a/b/datastores/Sensors/"),
    ] {
        let tables = GlueTables::new(client.clone(), "db", "b", prefix);
        assert_eq!(tables.location("Sensors"), expected, "prefix {prefix:?}");
    }
    assert_eq!(GlueTables::table_name("Sensors_2"), "sensors_2");
}

#[tokio::test]
async fn a_missing_table_is_created_with_the_json_layout_and_date_projection() {
    let get = mock!(aws_sdk_glue::Client::get_table).then_error(not_found);
    let sent: Arc<Mutex<Option<CreateTableInput>>> = Arc::default();
    let record = sent.clone();
    let create = mock!(aws_sdk_glue::Client::create_table)
        .match_requests(move |req| {
            *record.lock().unwrap() = Some(req.clone());
            true
        })
        .then_output(|| CreateTableOutput::builder().build());
    let update = untouched_update();
    let columns = cols(&[
        ("Temp", AttrType::Int),
        ("site", AttrType::Str),
        ("OK", AttrType::Bool),
        ("ratio", AttrType::Float),
        ("raw", AttrType::Json),
        ("empty", AttrType::Null),
    ]);
    tables(&[&get, &create, &update])
        .sync_table("Sensors", &columns)
        .await
        .unwrap();
    assert_eq!(update.num_calls(), 0);
    let sent = sent.lock().unwrap().take().unwrap();
    assert_eq!(sent.database_name(), Some("iotanalytics_db"));
    let input = sent.table_input().unwrap();
    assert_eq!(input.name(), "sensors");
    assert_eq!(input.table_type(), Some("EXTERNAL_TABLE"));
    let sd = input.storage_descriptor().unwrap();
    assert_eq!(
        sd.location(),
        Some("s3://data-bucket/svc/datastores/Sensors/")
    );
    assert_eq!(
        sd.input_format(),
        Some("org.apache.hadoop.mapred.TextInputFormat")
    );
    assert_eq!(
        sd.output_format(),
        Some("org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat")
    );
    let serde = sd.serde_info().unwrap();
    assert_eq!(
        serde.serialization_library(),
        Some("org.openx.data.jsonserde.JsonSerDe")
    );
    let serde_params = serde.parameters().unwrap();
    assert_eq!(serde_params["case.insensitive"], "true");
    assert_eq!(serde_params["ignore.malformed.json"], "false");
    assert_eq!(
        sent_columns(input),
        triples(&[
            ("temp", "bigint", "int"),
            ("site", "string", "str"),
            ("ok", "boolean", "bool"),
            ("ratio", "double", "float"),
            ("raw", "string", "json"),
            ("empty", "string", "null"),
        ])
    );
    let keys: Vec<_> = input
        .partition_keys()
        .iter()
        .map(|c| (c.name(), c.r#type()))
        .collect();
    assert_eq!(keys, vec![("dt", Some("string"))]);
    let params = input.parameters().unwrap();
    for (key, value) in [
        ("EXTERNAL", "TRUE"),
        ("projection.enabled", "true"),
        ("projection.dt.type", "date"),
        ("projection.dt.format", "yyyy-MM-dd"),
        ("projection.dt.range", "2020-01-01,NOW"),
        ("projection.dt.interval", "1"),
        ("projection.dt.interval.unit", "DAYS"),
        (
            "storage.location.template",
            "s3://data-bucket/svc/datastores/Sensors/dt=${dt}/",
        ),
    ] {
        assert_eq!(params.get(key).map(String::as_str), Some(value), "{key}");
    }
}

#[tokio::test]
async fn a_new_attribute_updates_the_table_with_the_longer_column_list() {
    let get = get_returning(stored(&[("temp", AttrType::Int)], "3"));
    let sent: Arc<Mutex<Vec<UpdateTableInput>>> = Arc::default();
    let update = recording_update(sent.clone());
    let create = untouched_create();
    let columns = cols(&[("Temp", AttrType::Int), ("humidity", AttrType::Float)]);
    tables(&[&get, &update, &create])
        .sync_table("Sensors", &columns)
        .await
        .unwrap();
    assert_eq!(create.num_calls(), 0);
    let sent = sent.lock().unwrap();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].database_name(), Some("iotanalytics_db"));
    assert_eq!(sent[0].name(), Some("sensors"));
    // The version read, so that Glue refuses the update over a concurrent change.
    assert_eq!(sent[0].version_id(), Some("3"));
    let input = sent[0].table_input().unwrap();
    assert_eq!(
        sent_columns(input),
        triples(&[("temp", "bigint", "int"), ("humidity", "double", "float")])
    );
    // The rest of the definition is sent whole: UpdateTable replaces the table.
    assert_eq!(
        input.storage_descriptor().unwrap().location(),
        Some("s3://data-bucket/svc/datastores/Sensors/")
    );
    assert_eq!(
        input.parameters().unwrap()["projection.dt.range"],
        "2020-01-01,NOW"
    );
}

#[tokio::test]
async fn equal_columns_leave_the_table_alone() {
    let columns = [("temp", AttrType::Int), ("site", AttrType::Str)];
    let get = get_returning(stored(&columns, "9"));
    let update = untouched_update();
    let create = untouched_create();
    // Names in another case are the same columns.
    let wanted = cols(&[("TEMP", AttrType::Int), ("Site", AttrType::Str)]);
    tables(&[&get, &update, &create])
        .sync_table("Sensors", &wanted)
        .await
        .unwrap();
    assert_eq!(get.num_calls(), 1);
    assert_eq!(update.num_calls(), 0);
    assert_eq!(create.num_calls(), 0);
}

#[tokio::test]
async fn a_stale_column_list_never_removes_or_narrows_columns() {
    let get = get_returning(stored(
        &[("temp", AttrType::Str), ("site", AttrType::Str)],
        "4",
    ));
    let update = untouched_update();
    tables(&[&get, &update])
        .sync_table("Sensors", &cols(&[("temp", AttrType::Int)]))
        .await
        .unwrap();
    assert_eq!(update.num_calls(), 0);
}

#[tokio::test]
async fn a_widened_type_changes_the_column_type() {
    for (before, after, expected) in [
        (AttrType::Int, AttrType::Str, ("temp", "string", "str")),
        (AttrType::Int, AttrType::Float, ("temp", "double", "float")),
        // Only nulls seen made it a string column; numbers make it bigint.
        (AttrType::Null, AttrType::Int, ("temp", "bigint", "int")),
    ] {
        let get = get_returning(stored(&[("temp", before)], "5"));
        let sent: Arc<Mutex<Vec<UpdateTableInput>>> = Arc::default();
        let update = recording_update(sent.clone());
        tables(&[&get, &update])
            .sync_table("Sensors", &cols(&[("temp", after)]))
            .await
            .unwrap();
        let sent = sent.lock().unwrap();
        assert_eq!(sent.len(), 1, "{before:?} -> {after:?}");
        assert_eq!(
            sent_columns(sent[0].table_input().unwrap()),
            triples(&[expected])
        );
    }
}

#[tokio::test]
async fn a_table_created_concurrently_is_read_again_and_updated() {
    let get = mock!(aws_sdk_glue::Client::get_table)
        .sequence()
        .error(not_found)
        .output(|| {
            GetTableOutput::builder()
                .table(stored(&[("site", AttrType::Str)], "1"))
                .build()
        })
        .build();
    let create = mock!(aws_sdk_glue::Client::create_table).then_error(|| {
        CreateTableError::AlreadyExistsException(
            AlreadyExistsException::builder()
                .meta(meta("AlreadyExistsException"))
                .build(),
        )
    });
    let sent: Arc<Mutex<Vec<UpdateTableInput>>> = Arc::default();
    let update = recording_update(sent.clone());
    tables(&[&get, &create, &update])
        .sync_table("Sensors", &cols(&[("temp", AttrType::Int)]))
        .await
        .unwrap();
    assert_eq!(get.num_calls(), 2);
    assert_eq!(create.num_calls(), 1);
    let sent = sent.lock().unwrap();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent_columns(sent[0].table_input().unwrap()),
        triples(&[("site", "string", "str"), ("temp", "bigint", "int")])
    );
}

#[tokio::test]
async fn an_update_over_a_concurrent_change_is_retried_from_a_fresh_read() {
    let get = mock!(aws_sdk_glue::Client::get_table)
        .sequence()
        .output(|| {
            GetTableOutput::builder()
                .table(stored(&[("site", AttrType::Str)], "1"))
                .build()
        })
        .output(|| {
            GetTableOutput::builder()
                .table(stored(
                    &[("site", AttrType::Str), ("flow", AttrType::Float)],
                    "2",
                ))
                .build()
        })
        .build();
    let sent: Arc<Mutex<Vec<UpdateTableInput>>> = Arc::default();
    let record = sent.clone();
    let update = mock!(aws_sdk_glue::Client::update_table)
        .match_requests(move |req| {
            record.lock().unwrap().push(req.clone());
            true
        })
        .sequence()
        .error(|| {
            UpdateTableError::ConcurrentModificationException(
                ConcurrentModificationException::builder()
                    .meta(meta("ConcurrentModificationException"))
                    .build(),
            )
        })
        .output(|| UpdateTableOutput::builder().build())
        .build();
    tables(&[&get, &update])
        .sync_table("Sensors", &cols(&[("temp", AttrType::Int)]))
        .await
        .unwrap();
    let sent = sent.lock().unwrap();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[1].version_id(), Some("2"));
    // The other writer's column is kept.
    assert_eq!(
        sent_columns(sent[1].table_input().unwrap()),
        triples(&[
            ("site", "string", "str"),
            ("flow", "double", "float"),
            ("temp", "bigint", "int"),
        ])
    );
}

#[test]
fn the_partition_key_and_names_that_fold_together_get_one_column_or_none() {
    let wanted = wanted_columns(
        "Sensors",
        &cols(&[
            ("Temp", AttrType::Int),
            ("DT", AttrType::Str),
            ("temp", AttrType::Float),
            ("site", AttrType::Null),
            ("SITE", AttrType::Str),
        ]),
    );
    assert_eq!(
        wanted,
        cols(&[("temp", AttrType::Float), ("site", AttrType::Str)])
    );
}

#[tokio::test]
async fn other_glue_errors_are_reported_not_swallowed() {
    let get = mock!(aws_sdk_glue::Client::get_table).then_error(|| {
        GetTableError::InternalServiceException(
            InternalServiceException::builder()
                .message("from the mock")
                .meta(meta("InternalServiceException"))
                .build(),
        )
    });
    let error = tables(&[&get])
        .sync_table("Sensors", &cols(&[("temp", AttrType::Int)]))
        .await
        .unwrap_err();
    match error {
        Error::InternalFailure(m) => assert_eq!(
            m,
            "Glue GetTable failed: InternalServiceException: from the mock"
        ),
        other => panic!("expected InternalFailure, got {other:?}"),
    }
}

#[tokio::test]
async fn dropping_deletes_the_table_and_a_missing_one_is_fine() {
    let delete = mock!(aws_sdk_glue::Client::delete_table)
        .match_requests(|req| {
            req.database_name() == Some("iotanalytics_db") && req.name() == Some("sensors")
        })
        .sequence()
        .output(|| DeleteTableOutput::builder().build())
        .error(|| {
            DeleteTableError::EntityNotFoundException(
                EntityNotFoundException::builder()
                    .meta(meta("EntityNotFoundException"))
                    .build(),
            )
        })
        .error(|| {
            DeleteTableError::ConcurrentModificationException(
                ConcurrentModificationException::builder()
                    .meta(meta("ConcurrentModificationException"))
                    .build(),
            )
        })
        .build();
    let tables = tables(&[&delete]);
    tables.drop_table("Sensors").await.unwrap();
    tables.drop_table("Sensors").await.unwrap();
    let error = tables.drop_table("Sensors").await.unwrap_err();
    assert!(matches!(error, Error::Throttling(_)), "{error:?}");
    assert_eq!(delete.num_calls(), 3);
}
