//! IoT Analytics definitions as JSON (the camelCase shapes of the service model, which
//! `describe-*` prints and `--cli-input-json` reads) turned into aws-sdk-iotanalytics types.
//!
//! Only the fields a Create or Update request takes are read, so read-only fields (`arn`,
//! `status`, `creationTime`, `statistics`…) are left behind. Numbers and booleans may also be
//! written as strings, as CloudFormation templates often do.

pub use super::reader::{Obj, ShapeError};
use aws_sdk_iotanalytics::types::{
    AddAttributesActivity, ChannelActivity, ChannelStorage, Column, ComputeType,
    ContainerDatasetAction, CustomerManagedChannelS3Storage, CustomerManagedDatastoreS3Storage,
    DatasetAction, DatasetContentDeliveryDestination, DatasetContentDeliveryRule,
    DatasetContentVersionValue, DatasetTrigger, DatastoreActivity,
    DatastoreIotSiteWiseMultiLayerStorage, DatastorePartition, DatastorePartitions,
    DatastoreStorage, DeltaTime, DeltaTimeSessionWindowConfiguration, DeviceRegistryEnrichActivity,
    DeviceShadowEnrichActivity, FileFormatConfiguration, FilterActivity, GlueConfiguration,
    IotEventsDestinationConfiguration, IotSiteWiseCustomerManagedDatastoreS3Storage,
    JsonConfiguration, LambdaActivity, LateDataRule, LateDataRuleConfiguration, MathActivity,
    OutputFileUriValue, ParquetConfiguration, Partition, PipelineActivity, QueryFilter,
    RemoveAttributesActivity, ResourceConfiguration, RetentionPeriod, S3DestinationConfiguration,
    Schedule, SchemaDefinition, SelectAttributesActivity, ServiceManagedChannelS3Storage,
    ServiceManagedDatastoreS3Storage, SqlQueryDatasetAction, TimestampPartition, TriggeringDataset,
    Variable, VersioningConfiguration,
};

type Result<T> = std::result::Result<T, ShapeError>;

/// `retentionPeriod`: `unlimited` or `numberOfDays`.
pub fn retention_period(o: &Obj) -> Result<RetentionPeriod> {
    Ok(RetentionPeriod::builder()
        .set_unlimited(o.boolean("unlimited")?)
        .set_number_of_days(o.int("numberOfDays")?)
        .build())
}

/// A channel's `channelStorage`.
pub fn channel_storage(o: &Obj) -> Result<ChannelStorage> {
    let customer = o.with("customerManagedS3", |c| {
        c.built(
            CustomerManagedChannelS3Storage::builder()
                .set_bucket(c.string("bucket")?)
                .set_key_prefix(c.string("keyPrefix")?)
                .set_role_arn(c.string("roleArn")?)
                .build(),
        )
    })?;
    let service = o.with("serviceManagedS3", |_| {
        Ok(ServiceManagedChannelS3Storage::builder().build())
    })?;
    Ok(ChannelStorage::builder()
        .set_service_managed_s3(service)
        .set_customer_managed_s3(customer)
        .build())
}

/// A datastore's `datastoreStorage`.
pub fn datastore_storage(o: &Obj) -> Result<DatastoreStorage> {
    let customer = o.with("customerManagedS3", |c| {
        c.built(
            CustomerManagedDatastoreS3Storage::builder()
                .set_bucket(c.string("bucket")?)
                .set_key_prefix(c.string("keyPrefix")?)
                .set_role_arn(c.string("roleArn")?)
                .build(),
        )
    })?;
    let sitewise = o.with("iotSiteWiseMultiLayerStorage", |m| {
        let storage = m.with("customerManagedS3Storage", |c| {
            c.built(
                IotSiteWiseCustomerManagedDatastoreS3Storage::builder()
                    .set_bucket(c.string("bucket")?)
                    .set_key_prefix(c.string("keyPrefix")?)
                    .build(),
            )
        })?;
        Ok(DatastoreIotSiteWiseMultiLayerStorage::builder()
            .set_customer_managed_s3_storage(storage)
            .build())
    })?;
    let service = o.with("serviceManagedS3", |_| {
        Ok(ServiceManagedDatastoreS3Storage::builder().build())
    })?;
    // A union in the model: exactly one choice.
    match (service, customer, sitewise) {
        (Some(service), None, None) => Ok(DatastoreStorage::ServiceManagedS3(service)),
        (None, Some(customer), None) => Ok(DatastoreStorage::CustomerManagedS3(customer)),
        (None, None, Some(sitewise)) => {
            Ok(DatastoreStorage::IotSiteWiseMultiLayerStorage(sitewise))
        }
        _ => Err(ShapeError {
            path: o.path.clone(),
            message: "expected exactly one of serviceManagedS3, customerManagedS3 and \
                      iotSiteWiseMultiLayerStorage"
                .into(),
        }),
    }
}

/// A datastore's `fileFormatConfiguration`: JSON, or Parquet with a schema.
pub fn file_format(o: &Obj) -> Result<FileFormatConfiguration> {
    let parquet = o.with("parquetConfiguration", |p| {
        let schema = p.with("schemaDefinition", |s| {
            let columns = s.each("columns", |c| {
                c.built(
                    Column::builder()
                        .set_name(c.string("name")?)
                        .set_type(c.string("type")?)
                        .build(),
                )
            })?;
            Ok(SchemaDefinition::builder().set_columns(columns).build())
        })?;
        Ok(ParquetConfiguration::builder()
            .set_schema_definition(schema)
            .build())
    })?;
    let json = o.with("jsonConfiguration", |_| {
        Ok(JsonConfiguration::builder().build())
    })?;
    Ok(FileFormatConfiguration::builder()
        .set_json_configuration(json)
        .set_parquet_configuration(parquet)
        .build())
}

/// A datastore's `datastorePartitions`.
pub fn partitions(o: &Obj) -> Result<DatastorePartitions> {
    let partitions = o.each("partitions", |p| {
        let attribute = p.with("attributePartition", |a| {
            a.built(
                Partition::builder()
                    .set_attribute_name(a.string("attributeName")?)
                    .build(),
            )
        })?;
        let timestamp = p.with("timestampPartition", |t| {
            t.built(
                TimestampPartition::builder()
                    .set_attribute_name(t.string("attributeName")?)
                    .set_timestamp_format(t.string("timestampFormat")?)
                    .build(),
            )
        })?;
        Ok(DatastorePartition::builder()
            .set_attribute_partition(attribute)
            .set_timestamp_partition(timestamp)
            .build())
    })?;
    Ok(DatastorePartitions::builder()
        .set_partitions(partitions)
        .build())
}

/// One of a pipeline's `pipelineActivities`: an object with one key naming the activity.
pub fn activity(o: &Obj) -> Result<PipelineActivity> {
    let mut builder = PipelineActivity::builder()
        .set_channel(o.with("channel", |a| {
            a.built(
                ChannelActivity::builder()
                    .set_name(a.string("name")?)
                    .set_channel_name(a.string("channelName")?)
                    .set_next(a.string("next")?)
                    .build(),
            )
        })?)
        .set_datastore(o.with("datastore", |a| {
            a.built(
                DatastoreActivity::builder()
                    .set_name(a.string("name")?)
                    .set_datastore_name(a.string("datastoreName")?)
                    .build(),
            )
        })?)
        .set_lambda(o.with("lambda", |a| {
            a.built(
                LambdaActivity::builder()
                    .set_name(a.string("name")?)
                    .set_lambda_name(a.string("lambdaName")?)
                    .set_batch_size(a.int("batchSize")?)
                    .set_next(a.string("next")?)
                    .build(),
            )
        })?)
        .set_add_attributes(o.with("addAttributes", |a| {
            a.built(
                AddAttributesActivity::builder()
                    .set_name(a.string("name")?)
                    .set_attributes(a.string_map("attributes")?)
                    .set_next(a.string("next")?)
                    .build(),
            )
        })?)
        .set_remove_attributes(o.with("removeAttributes", |a| {
            a.built(
                RemoveAttributesActivity::builder()
                    .set_name(a.string("name")?)
                    .set_attributes(a.strings("attributes")?)
                    .set_next(a.string("next")?)
                    .build(),
            )
        })?)
        .set_select_attributes(o.with("selectAttributes", |a| {
            a.built(
                SelectAttributesActivity::builder()
                    .set_name(a.string("name")?)
                    .set_attributes(a.strings("attributes")?)
                    .set_next(a.string("next")?)
                    .build(),
            )
        })?)
        .set_filter(o.with("filter", |a| {
            a.built(
                FilterActivity::builder()
                    .set_name(a.string("name")?)
                    .set_filter(a.string("filter")?)
                    .set_next(a.string("next")?)
                    .build(),
            )
        })?)
        .set_math(o.with("math", |a| {
            a.built(
                MathActivity::builder()
                    .set_name(a.string("name")?)
                    .set_attribute(a.string("attribute")?)
                    .set_math(a.string("math")?)
                    .set_next(a.string("next")?)
                    .build(),
            )
        })?);
    builder = builder
        .set_device_registry_enrich(o.with("deviceRegistryEnrich", |a| {
            a.built(
                DeviceRegistryEnrichActivity::builder()
                    .set_name(a.string("name")?)
                    .set_attribute(a.string("attribute")?)
                    .set_thing_name(a.string("thingName")?)
                    .set_role_arn(a.string("roleArn")?)
                    .set_next(a.string("next")?)
                    .build(),
            )
        })?)
        .set_device_shadow_enrich(o.with("deviceShadowEnrich", |a| {
            a.built(
                DeviceShadowEnrichActivity::builder()
                    .set_name(a.string("name")?)
                    .set_attribute(a.string("attribute")?)
                    .set_thing_name(a.string("thingName")?)
                    .set_role_arn(a.string("roleArn")?)
                    .set_next(a.string("next")?)
                    .build(),
            )
        })?);
    Ok(builder.build())
}

/// A pipeline's activities, in order.
pub fn activities(o: &Obj, key: &str) -> Result<Option<Vec<PipelineActivity>>> {
    o.each(key, activity)
}

/// One of a dataset's `actions`: a `queryAction` or a `containerAction`.
pub fn dataset_action(o: &Obj) -> Result<DatasetAction> {
    let query = o.with("queryAction", |q| {
        let filters = q.each("filters", |f| {
            let delta = f.with("deltaTime", |d| {
                d.built(
                    DeltaTime::builder()
                        .set_offset_seconds(d.int("offsetSeconds")?)
                        .set_time_expression(d.string("timeExpression")?)
                        .build(),
                )
            })?;
            Ok(QueryFilter::builder().set_delta_time(delta).build())
        })?;
        q.built(
            SqlQueryDatasetAction::builder()
                .set_sql_query(q.string("sqlQuery")?)
                .set_filters(filters)
                .build(),
        )
    })?;
    let container = o.with("containerAction", container_action)?;
    Ok(DatasetAction::builder()
        .set_action_name(o.string("actionName")?)
        .set_query_action(query)
        .set_container_action(container)
        .build())
}

fn container_action(c: &Obj) -> Result<ContainerDatasetAction> {
    let resources = c.with("resourceConfiguration", |r| {
        r.built(
            ResourceConfiguration::builder()
                .set_compute_type(
                    r.string("computeType")?
                        .map(|t| ComputeType::from(t.as_str())),
                )
                .set_volume_size_in_gb(r.int("volumeSizeInGB")?)
                .build(),
        )
    })?;
    let variables = c.each("variables", |v| {
        let version = v.with("datasetContentVersionValue", |d| {
            d.built(
                DatasetContentVersionValue::builder()
                    .set_dataset_name(d.string("datasetName")?)
                    .build(),
            )
        })?;
        let output = v.with("outputFileUriValue", |f| {
            f.built(
                OutputFileUriValue::builder()
                    .set_file_name(f.string("fileName")?)
                    .build(),
            )
        })?;
        v.built(
            Variable::builder()
                .set_name(v.string("name")?)
                .set_string_value(v.string("stringValue")?)
                .set_double_value(v.float("doubleValue")?)
                .set_dataset_content_version_value(version)
                .set_output_file_uri_value(output)
                .build(),
        )
    })?;
    c.built(
        ContainerDatasetAction::builder()
            .set_image(c.string("image")?)
            .set_execution_role_arn(c.string("executionRoleArn")?)
            .set_resource_configuration(resources)
            .set_variables(variables)
            .build(),
    )
}

/// One of a dataset's `triggers`: a `schedule` or a triggering `dataset`.
pub fn trigger(o: &Obj) -> Result<DatasetTrigger> {
    let schedule = o.with("schedule", |s| {
        Ok(Schedule::builder()
            .set_expression(s.string("expression")?)
            .build())
    })?;
    let dataset = o.with("dataset", |d| {
        d.built(
            TriggeringDataset::builder()
                .set_name(d.string("name")?)
                .build(),
        )
    })?;
    Ok(DatasetTrigger::builder()
        .set_schedule(schedule)
        .set_dataset(dataset)
        .build())
}

/// One of a dataset's `contentDeliveryRules`.
pub fn delivery_rule(o: &Obj) -> Result<DatasetContentDeliveryRule> {
    let destination = o.with("destination", |d| {
        let events = d.with("iotEventsDestinationConfiguration", |e| {
            e.built(
                IotEventsDestinationConfiguration::builder()
                    .set_input_name(e.string("inputName")?)
                    .set_role_arn(e.string("roleArn")?)
                    .build(),
            )
        })?;
        let s3 = d.with("s3DestinationConfiguration", |s| {
            let glue = s.with("glueConfiguration", |g| {
                g.built(
                    GlueConfiguration::builder()
                        .set_table_name(g.string("tableName")?)
                        .set_database_name(g.string("databaseName")?)
                        .build(),
                )
            })?;
            s.built(
                S3DestinationConfiguration::builder()
                    .set_bucket(s.string("bucket")?)
                    .set_key(s.string("key")?)
                    .set_glue_configuration(glue)
                    .set_role_arn(s.string("roleArn")?)
                    .build(),
            )
        })?;
        Ok(DatasetContentDeliveryDestination::builder()
            .set_iot_events_destination_configuration(events)
            .set_s3_destination_configuration(s3)
            .build())
    })?;
    Ok(DatasetContentDeliveryRule::builder()
        .set_entry_name(o.string("entryName")?)
        .set_destination(destination)
        .build())
}

/// A dataset's `versioningConfiguration`.
pub fn versioning(o: &Obj) -> Result<VersioningConfiguration> {
    Ok(VersioningConfiguration::builder()
        .set_unlimited(o.boolean("unlimited")?)
        .set_max_versions(o.int("maxVersions")?)
        .build())
}

/// One of a dataset's `lateDataRules`.
pub fn late_data_rule(o: &Obj) -> Result<LateDataRule> {
    let configuration = o.with("ruleConfiguration", |c| {
        let window = c.with("deltaTimeSessionWindowConfiguration", |w| {
            w.built(
                DeltaTimeSessionWindowConfiguration::builder()
                    .set_timeout_in_minutes(w.int("timeoutInMinutes")?)
                    .build(),
            )
        })?;
        Ok(LateDataRuleConfiguration::builder()
            .set_delta_time_session_window_configuration(window)
            .build())
    })?;
    Ok(LateDataRule::builder()
        .set_rule_name(o.string("ruleName")?)
        .set_rule_configuration(configuration)
        .build())
}

#[cfg(test)]
#[path = "shapes_tests.rs"]
mod tests;
